//! `findings.jsonl`: every finding, appended and flushed the moment it
//! arrives, so whatever was reported is on disk even if the process is
//! killed right after. The file is only ever appended to.

use crate::session::{SessionEvent, Sink};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

pub struct FindingsLog {
    file: File,
    line: Vec<u8>,
}

impl FindingsLog {
    pub fn open(path: &Path) -> io::Result<FindingsLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FindingsLog {
            file,
            line: Vec::with_capacity(1024),
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
        self.line.clear();
        serde_json::to_writer(&mut self.line, finding.as_ref())?;
        self.line.push(b'\n');
        // One write per line: a crash leaves whole lines, never half a finding
        // followed by the next.
        self.file.write_all(&self.line)
    }
}
