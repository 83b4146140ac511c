//! `findings.jsonl`: every finding, appended and written the moment it
//! arrives, so whatever was reported is on disk even if the process is
//! killed right after. The file is only ever appended to; a disk that
//! refuses writes delays findings (see [`LineLog`]), it does not lose them.

use super::line_log::{Durability, LineLog};
use crate::session::{SessionEvent, Sink};
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

pub struct FindingsLog {
    log: LineLog,
}

impl FindingsLog {
    pub fn open(path: &Path) -> io::Result<FindingsLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FindingsLog {
            log: LineLog::new(file, Durability::Immediate)?,
        })
    }
}

impl Sink for FindingsLog {
    fn name(&self) -> &'static str {
        "findings.jsonl"
    }

    fn handle(&mut self, event: &SessionEvent) -> io::Result<()> {
        let SessionEvent::Finding(finding) = event else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(finding.as_ref())?;
        line.push(b'\n');
        self.log.push(line)
    }

    /// Retries findings a failing disk refused (the hub calls this at least
    /// every second).
    fn flush(&mut self) -> io::Result<()> {
        self.log.flush()
    }
}
