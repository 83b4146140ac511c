//! `session.json`: what the report needs to know about the session itself.
//!
//! Start and end times, the consent phases with the moment each began, the
//! device under test, and running counts. The file is small and rewritten
//! atomically (temp file + rename) whenever it changed and the sink is
//! flushed, so a crash leaves the last complete version.

use crate::consent::PhaseChange;
use crate::session::{SessionEvent, Sink};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How often running counts alone are rewritten.
const COUNTS_EVERY: Duration = Duration::from_secs(5);

/// Phase switches recorded at most (a tester switches a handful of times;
/// the bound only protects against a runaway script).
const MAX_PHASES: usize = 10_000;

/// The contents of `session.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub leakscope_version: String,
    /// `run` (live capture) or `scan` (offline HAR).
    pub mode: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended: Option<OffsetDateTime>,
    /// Device model and app package from the profile, when given.
    pub device_model: Option<String>,
    pub app: Option<String>,
    /// What was scanned for `scan` sessions (the HAR file name).
    pub source: Option<String>,
    pub phases: Vec<PhaseRecord>,
    pub flows: u64,
    pub findings: u64,
}

/// One phase period as stored (same shape as [`PhaseChange`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PhaseRecord {
    pub phase: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl From<PhaseChange> for PhaseRecord {
    fn from(change: PhaseChange) -> Self {
        PhaseRecord {
            phase: change.phase.name().to_owned(),
            since: change.since,
        }
    }
}

impl SessionInfo {
    /// Reads `session.json` from an output directory.
    pub fn read(dir: &Path) -> Result<SessionInfo, String> {
        let path = dir.join("session.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Keeps `session.json` up to date.
pub struct SessionInfoLog {
    path: PathBuf,
    info: SessionInfo,
    dirty: bool,
    /// A phase switch is waiting to be written.
    phase_changed: bool,
    written: Instant,
}

impl SessionInfoLog {
    pub fn new(dir: &Path, info: SessionInfo) -> io::Result<SessionInfoLog> {
        let mut log = SessionInfoLog {
            path: dir.join("session.json"),
            info,
            dirty: true,
            phase_changed: false,
            written: Instant::now(),
        };
        log.write()?;
        Ok(log)
    }

    fn write(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&self.info)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)?;
        self.dirty = false;
        self.phase_changed = false;
        self.written = Instant::now();
        Ok(())
    }
}

impl Sink for SessionInfoLog {
    fn name(&self) -> &'static str {
        "session.json"
    }

    fn handle(&mut self, event: &SessionEvent) -> io::Result<()> {
        match event {
            SessionEvent::FlowDone(_) => self.info.flows += 1,
            SessionEvent::Finding(_) => self.info.findings += 1,
            SessionEvent::PhaseChanged(change) if self.info.phases.len() < MAX_PHASES => {
                self.info.phases.push((*change).into());
                self.phase_changed = true;
            }
            _ => return Ok(()),
        }
        self.dirty = true;
        Ok(())
    }

    /// A phase switch is written at once; running counts at most every
    /// `COUNTS_EVERY` — under load the hub flushes after nearly every
    /// flow, and a rewrite per flow cost a tenth of the proxy's CPU.
    fn flush(&mut self) -> io::Result<()> {
        let due = self.phase_changed || self.written.elapsed() >= COUNTS_EVERY;
        if self.dirty && due {
            self.write()
        } else {
            Ok(())
        }
    }
}

impl Drop for SessionInfoLog {
    fn drop(&mut self) {
        self.info.ended = Some(OffsetDateTime::now_utc());
        if let Err(err) = self.write() {
            tracing::error!("writing {}: {err}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ConsentPhase;
    use crate::flow::{Flow, FlowKind};
    use std::sync::Arc;

    fn info() -> SessionInfo {
        let start = PhaseChange {
            phase: ConsentPhase::PreConsent,
            since: OffsetDateTime::now_utc(),
        };
        SessionInfo {
            leakscope_version: "test".into(),
            mode: "run".into(),
            started: start.since,
            ended: None,
            device_model: Some("Pixel 7".into()),
            app: None,
            source: None,
            phases: vec![start.into()],
            flows: 0,
            findings: 0,
        }
    }

    #[test]
    fn counts_phases_and_end_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SessionInfoLog::new(dir.path(), info()).unwrap();
        assert!(SessionInfo::read(dir.path()).unwrap().ended.is_none());
        let flow = Arc::new(Flow::new(FlowKind::Http, "127.0.0.1:1".parse().unwrap()));
        log.handle(&SessionEvent::FlowDone(flow)).unwrap();
        let consented = PhaseChange {
            phase: ConsentPhase::Consented,
            since: OffsetDateTime::now_utc(),
        };
        log.handle(&SessionEvent::PhaseChanged(consented)).unwrap();
        log.flush().unwrap();
        let read = SessionInfo::read(dir.path()).unwrap();
        assert_eq!(read.flows, 1);
        assert_eq!(read.phases.len(), 2);
        assert_eq!(read.phases[1].phase, "consented");
        drop(log);
        assert!(SessionInfo::read(dir.path()).unwrap().ended.is_some());
    }

    #[test]
    fn counts_alone_wait_for_the_interval_or_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SessionInfoLog::new(dir.path(), info()).unwrap();
        let flow = Arc::new(Flow::new(FlowKind::Http, "127.0.0.1:1".parse().unwrap()));
        log.handle(&SessionEvent::FlowDone(flow)).unwrap();
        log.flush().unwrap();
        assert_eq!(SessionInfo::read(dir.path()).unwrap().flows, 0, "not yet");
        log.written -= COUNTS_EVERY;
        log.flush().unwrap();
        assert_eq!(SessionInfo::read(dir.path()).unwrap().flows, 1);
    }
}
