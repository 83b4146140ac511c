//! The consent-phase timeline of a scanned capture.
//!
//! A live session learns its phases from the tester as they happen; a HAR
//! made elsewhere has to be told afterwards. The timeline comes from, in
//! order of precedence:
//! 1. `--consent-at TIME` / `--refused-at TIME`: the capture is
//!    `pre-consent` until the first of them;
//! 2. HAR pages that name a phase (leakscope's own HAR has one page per
//!    phase period, id `phase-<n>-<phase>`; a page titled `consented` from
//!    another tool works too): each page's phase holds from its start;
//! 3. nothing: the whole capture is `consented`. Assuming `pre-consent`
//!    would flag every identifier in the file as sent before consent, which
//!    is rarely what a capture made elsewhere shows; the scan says that
//!    violations that depend on consent timing need `--consent-at`.
//!
//! Replaying it, [`Timeline::before`] names the phase changes to announce
//! before each entry (entries are replayed in start order), so the
//! inspector labels each flow with the phase in force at its start and the
//! outputs list the phase periods as a live session would.

use super::entry::parse_time;
use super::har_input::{Field, JsonPath, Page, Problem, Text};
use crate::consent::{ConsentPhase, PhaseChange};
use std::collections::HashMap;
use time::{OffsetDateTime, PrimitiveDateTime, Time};

/// Where the timeline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseSource {
    Flags,
    Pages,
    /// No phase information: everything is `consented`.
    Assumed,
}

/// One phase switch, and the page that marks it, if any.
#[derive(Debug, Clone)]
pub struct PhasePoint {
    pub change: PhaseChange,
    pub page: Option<String>,
}

/// The phase a page id or title names: `pre-consent`, `consented`,
/// `refused` or `background` (any case, `_` for `-`), alone, after
/// leakscope's `phase-<n>-` id prefix, or before leakscope's title suffix
/// (`consented (from 10:00:00)`). A title merely containing one of the
/// words (`Background check`) does not count: Chrome titles pages after
/// the document.
pub fn phase_named(text: &str) -> Option<ConsentPhase> {
    let lower = text.trim().to_ascii_lowercase().replace('_', "-");
    let name = match lower.strip_prefix("phase-") {
        Some(rest) => rest
            .split_once('-')
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(lower.as_str(), |(_, phase)| phase),
        None => lower.as_str(),
    };
    let name = match name.strip_prefix("preconsent") {
        Some(rest) => format!("pre-consent{rest}"),
        None => name.to_owned(),
    };
    ConsentPhase::ALL.into_iter().find(|phase| {
        name.strip_prefix(phase.name()).is_some_and(|rest| {
            let rest = rest.trim_start();
            rest.is_empty() || rest.starts_with(['(', ':'])
        })
    })
}

/// The phase pages of a HAR, each with the moment it began.
pub fn from_pages(pages: Field<Vec<Field<Page>>>, warnings: &mut Vec<Problem>) -> Vec<PhasePoint> {
    let path = JsonPath::root("log");
    let path = path.key("pages");
    let Some(pages) = pages.lenient(&path, warnings) else {
        return Vec::new();
    };
    let mut points = Vec::new();
    for (index, page) in pages.into_iter().enumerate() {
        let page_path = path.index(index);
        let Some(page) = page.lenient(&page_path, warnings) else {
            continue;
        };
        let id = page.id.present().map(|t| t.0.clone());
        let title = page.title.present().map(|Text(t)| t.as_str());
        let Some(phase) = id
            .as_deref()
            .and_then(phase_named)
            .or_else(|| title.and_then(phase_named))
        else {
            continue;
        };
        let start_path = page_path.key("startedDateTime");
        let since = match page.started_date_time.required(&start_path) {
            Ok(text) => parse_time(&text).map(|(t, _)| t),
            Err(problem) => {
                warnings.push(problem);
                continue;
            }
        };
        let Some(since) = since else {
            warnings.push(start_path.problem("not an RFC 3339 date and time; phase page ignored"));
            continue;
        };
        points.push(PhasePoint {
            change: PhaseChange { phase, since },
            page: id,
        });
    }
    points
}

/// Parses a `--consent-at` / `--refused-at` value: RFC 3339; a date and
/// time without offset (in `reference`'s offset); or `HH:MM[:SS[.fff]]`
/// on `reference`'s date, in its offset. `reference` is the capture's first
/// entry.
pub fn parse_flag_time(
    flag: &str,
    text: &str,
    reference: Option<OffsetDateTime>,
) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    let hint = "write RFC 3339 (2024-05-01T10:00:05Z) or HH:MM:SS (on the date of the capture's first entry)";
    if let Some((time, assumed_utc)) = parse_time(text) {
        return Ok(match (assumed_utc, reference) {
            (true, Some(reference)) => {
                PrimitiveDateTime::new(time.date(), time.time()).assume_offset(reference.offset())
            }
            _ => time,
        });
    }
    let Some(time) = clock_time(text) else {
        return Err(format!("{flag} {text:?}: not a time; {hint}"));
    };
    let Some(reference) = reference else {
        return Err(format!(
            "{flag} {text:?}: a time of day needs a date, and the capture has no dated entry; write RFC 3339"
        ));
    };
    Ok(reference.replace_time(time))
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fraction`.
fn clock_time(text: &str) -> Option<Time> {
    let mut parts = text.split(':');
    let hour: u8 = parts.next()?.parse().ok()?;
    let minute: u8 = parts.next()?.parse().ok()?;
    let (second, nanos) = match parts.next() {
        None => (0, 0),
        Some(seconds) => {
            let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
            if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let nanos = if fraction.is_empty() {
                0
            } else {
                format!("{fraction:0<9}").parse().ok()?
            };
            (whole.parse().ok()?, nanos)
        }
    };
    if parts.next().is_some() {
        return None;
    }
    Time::from_hms_nano(hour, minute, second, nanos).ok()
}

/// The phase timeline being replayed.
pub struct Timeline {
    /// Sorted by time.
    points: Vec<PhasePoint>,
    /// Position of each phase page in `points`.
    pages: HashMap<String, usize>,
    /// First point not yet announced.
    next: usize,
    initial: PhaseChange,
}

impl Timeline {
    /// `capture_start`: the first entry's start. A point at or before it
    /// is the phase the session starts in; otherwise the session starts
    /// `pre-consent` (or `consented` when there are no points at all).
    pub fn new(mut points: Vec<PhasePoint>, capture_start: OffsetDateTime) -> Timeline {
        points.sort_by_key(|p| p.change.since);
        let (initial, next) = match points.first() {
            Some(first) if first.change.since <= capture_start => (first.change, 1),
            Some(_) => (phase_at(ConsentPhase::PreConsent, capture_start), 0),
            None => (phase_at(ConsentPhase::Consented, capture_start), 0),
        };
        let pages = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.page.clone()?, i)))
            .collect();
        Timeline {
            points,
            pages,
            next,
            initial,
        }
    }

    /// The phase the session starts in (the sinks' first phase).
    pub fn initial(&self) -> PhaseChange {
        self.initial
    }

    /// Sort key after the start time: entries of the same millisecond
    /// keep the order of the phase pages they name.
    pub fn page_order(&self, pageref: Option<&str>) -> usize {
        pageref
            .and_then(|r| self.pages.get(r))
            .map_or(0, |&i| i + 1)
    }

    /// Phase changes to announce before replaying an entry that started at
    /// `start` on page `pageref`. The entry's own phase page, when it has
    /// one, wins over its time: leakscope's HAR rounds times to the
    /// millisecond, and the page says exactly which phase the flow had.
    pub fn before(&mut self, start: OffsetDateTime, pageref: Option<&str>) -> Vec<PhaseChange> {
        let by_page = pageref.and_then(|r| self.pages.get(r).copied());
        let target = by_page.or_else(|| {
            self.points
                .partition_point(|p| p.change.since <= start)
                .checked_sub(1)
        });
        match target {
            Some(t) if t >= self.next => {
                let changes = self.points[self.next..=t]
                    .iter()
                    .map(|p| p.change)
                    .collect();
                self.next = t + 1;
                changes
            }
            // Out of order (a page that disagrees with the times): switch
            // back for this entry; announcing an unchanged phase is a no-op.
            Some(t) => vec![self.points[t].change],
            None => vec![self.initial],
        }
    }

    /// Phase changes after the last entry, so the outputs list them all.
    pub fn remaining(&mut self) -> Vec<PhaseChange> {
        let rest = self.points[self.next.min(self.points.len())..]
            .iter()
            .map(|p| p.change)
            .collect();
        self.next = self.points.len();
        rest
    }
}

fn phase_at(phase: ConsentPhase, since: OffsetDateTime) -> PhaseChange {
    PhaseChange { phase, since }
}

#[cfg(test)]
#[path = "phases_tests.rs"]
mod tests;
