//! The session report: `report.html` and `summary.json` from an output
//! directory.
//!
//! Input, all written by `leakscope run` (or `scan`) into its output
//! directory:
//! - `session.json` (required): times, mode, device, phase switches;
//! - `flows.jsonl` (required): one flow per line;
//! - `findings.jsonl` (required): one finding per line;
//! - `session.har` (optional): only its entries' `_leakscope.sdk`
//!   attribution is read, so that SDKs contacted without receiving any
//!   identifier are listed too. Without it the SDK list comes from the
//!   findings alone (and says so in `notes`).
//!
//! Output, in the same directory, each written to a temporary file and
//! renamed into place, so a reader never sees half a report:
//! - `summary.json`: [`summary::Summary`]. Verdict rows are keyed by
//!   (identifier, recipient, phase); `recipient` is the SDK's name when
//!   the SDK catalogue attributed the host, else the host itself, the same
//!   notion of recipient the over-frequency rule uses;
//! - `report.html`: one self-contained file (inline CSS and SVG, no script,
//!   nothing fetched), for screen and print.
//!
//! Every file is read once, line by line, and memory stays bounded
//! whatever the number of flows (see [`summary`]). Unreadable lines (a
//! truncated last line after a crash, garbage) are skipped and counted in
//! `malformed_lines`, never an error.

mod html;
mod html_css;
pub mod read;
pub mod summary;
mod svg;
pub mod timeline;

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use summary::{Aggregate, Aggregator, Summary};
use time::OffsetDateTime;

/// Where the report was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub summary: PathBuf,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{} does not exist or is not a directory; give the output directory (--out) of a `leakscope run` or `leakscope scan`", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is missing: `leakscope run` and `leakscope scan` write it into their output directory; is this a leakscope output directory?", .0.display())]
    Missing(PathBuf),
    #[error("{} is not a readable session file: {source}", .path.display())]
    BadSession {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("reading {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Reads the session files in `dir`, writes `report.html` and
/// `summary.json` there (atomically: temp + rename), returns the paths and
/// a short plain-text summary (at most about 25 lines) for the terminal.
///
/// Errors: `dir` missing, a required file missing (the message names it
/// and the command that writes it), `session.json` unparsable, or I/O.
/// Malformed `.jsonl` lines and an unreadable HAR are not errors: they are
/// counted and noted in the summary.
pub fn write_report(dir: &Path) -> Result<(ReportFiles, String), ReportError> {
    let aggregate = aggregate_dir(dir)?;
    let files = ReportFiles {
        html: dir.join("report.html"),
        summary: dir.join("summary.json"),
    };
    let json = serde_json::to_vec_pretty(&aggregate.summary).map_err(|e| ReportError::Write {
        path: files.summary.clone(),
        source: io::Error::other(e),
    })?;
    write_atomically(&files.summary, &json)?;
    let page = html::render(&aggregate, OffsetDateTime::now_utc());
    write_atomically(&files.html, page.as_bytes())?;
    let text = text_summary(&aggregate.summary, &files);
    Ok((files, text))
}

/// Writes the report of a session that just ended and prints its text
/// summary; a failure is printed as a warning, because the evidence itself
/// is already safely on disk and the report can be made again with
/// `leakscope report DIR`.
pub fn print_after_session(dir: &Path) {
    match write_report(dir) {
        Ok((_, text)) => println!("{text}"),
        Err(err) => eprintln!(
            "WARNING: no report written: {err} (retry with `leakscope report {}`)",
            dir.display()
        ),
    }
}

/// Reads and aggregates the session files of `dir` without writing.
pub fn aggregate_dir(dir: &Path) -> Result<Aggregate, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotADirectory(dir.to_owned()));
    }
    let session_path = dir.join("session.json");
    let session_file = open(&session_path)?;
    let session = serde_json::from_reader(BufReader::new(session_file)).map_err(|source| {
        ReportError::BadSession {
            path: session_path.clone(),
            source,
        }
    })?;
    let flows_path = dir.join("flows.jsonl");
    let findings_path = dir.join("findings.jsonl");
    // Both are opened before any work, so a missing one fails fast.
    let flows_file = open(&flows_path)?;
    let findings_file = open(&findings_path)?;

    let mut agg = Aggregator::new(session);
    let mut notes = Vec::new();
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Read { path, source }
    };
    let bad_flows = read::for_each_line(BufReader::new(flows_file), |f| agg.add_flow(f))
        .map_err(read_err(&flows_path))?;
    let bad_findings = read::for_each_line(BufReader::new(findings_file), |f| agg.add_finding(f))
        .map_err(read_err(&findings_path))?;
    for (bad, name) in [(bad_flows, "flows.jsonl"), (bad_findings, "findings.jsonl")] {
        if bad > 0 {
            notes.push(format!(
                "{bad} unreadable line(s) of {name} skipped (a truncated last line is normal after a crash)."
            ));
        }
    }

    let har_path = dir.join("session.har");
    match File::open(&har_path) {
        Ok(file) => {
            agg.har_was_read();
            if let Err(err) = read::for_each_har_entry(BufReader::new(file), |e| agg.add_har_entry(e)) {
                notes.push(format!(
                    "session.har could not be read completely ({err}); SDK contacts after that point are missing."
                ));
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => notes.push(
            "No session.har: the SDK list shows only SDKs that received identifiers (from findings.jsonl).".to_owned(),
        ),
        Err(err) => notes.push(format!(
            "session.har not read ({err}): the SDK list shows only SDKs that received identifiers."
        )),
    }
    Ok(agg.finish(bad_flows + bad_findings, notes))
}

fn open(path: &Path) -> Result<File, ReportError> {
    File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ReportError::Missing(path.to_owned())
        } else {
            ReportError::Read {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory, synced then renamed, so `path` is always whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let wrap = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = File::create(&tmp).map_err(wrap)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(wrap)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(wrap)
}

/// Verdict rows listed in the terminal summary.
const TEXT_ROWS: usize = 8;

/// The terminal summary: paths, span, counts, the worst verdicts.
pub fn text_summary(s: &Summary, files: &ReportFiles) -> String {
    let mut out = Vec::new();
    out.push(format!("Report:  {}", files.html.display()));
    out.push(format!("Summary: {}", files.summary.display()));
    let mut subject = Vec::new();
    if let Some(app) = &s.session.app {
        subject.push(format!("app {app}"));
    }
    if let Some(device) = &s.session.device_model {
        subject.push(format!("device {device}"));
    }
    let end = s
        .session
        .ended
        .map_or("(no clean end)".to_owned(), html::format_time);
    out.push(format!(
        "Session: {} to {}{}",
        html::format_time(s.session.started),
        end,
        {
            if subject.is_empty() {
                String::new()
            } else {
                format!(", {}", subject.join(", "))
            }
        }
    ));
    out.push(format!(
        "Flows: {}   Findings: {} ({} with violations)",
        s.counts.flows, s.counts.findings, s.counts.findings_with_violations
    ));
    if !s.counts.violations_by_kind.is_empty() {
        let kinds: Vec<String> = s
            .counts
            .violations_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push(format!("Violations: {}", kinds.join(", ")));
    }
    let violating: Vec<_> = s
        .verdicts
        .iter()
        .filter(|v| !v.violations.is_empty())
        .collect();
    if !violating.is_empty() {
        out.push(format!(
            "Top verdicts ({} with violations):",
            violating.len()
        ));
        for v in violating.iter().take(TEXT_ROWS) {
            out.push(format!(
                "  {} -> {} [{}] x{}: {}",
                one_line(&v.identifier, 40),
                one_line(&v.recipient, 48),
                v.phase,
                v.count,
                v.violations.join(", ")
            ));
        }
        if violating.len() > TEXT_ROWS {
            out.push(format!(
                "  ... {} more in the report",
                violating.len() - TEXT_ROWS
            ));
        }
    }
    let fed = s.sdks.iter().filter(|x| x.findings > 0).count();
    out.push(format!(
        "Third-party SDKs: {} contacted, {fed} received identifiers",
        s.sdks.len()
    ));
    if !s.tls_refused.is_empty() {
        out.push(format!(
            "Refused TLS (likely certificate pinning): {} host(s), {} handshake(s)",
            s.tls_refused.len(),
            s.counts.tls_refused
        ));
    }
    if !s.notes.is_empty() {
        out.push(format!(
            "{} note(s) on completeness at the end of the report.",
            s.notes.len()
        ));
    }
    if s.malformed_lines > 0 {
        out.push(format!(
            "Skipped {} unreadable line(s); see notes in the report.",
            s.malformed_lines
        ));
    }
    out.join("\n")
}

/// `text` on one line with control characters replaced, at most `max`
/// characters: hosts come from traffic and must not steer the terminal.
fn one_line(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    summary::truncate_chars(&clean, max)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
