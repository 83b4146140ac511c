//! `flows.jsonl`: every completed flow record, one JSON object per line.
//!
//! Lines are written in batches and whenever the event queue runs dry, so a
//! crash loses at most the flows of the last moment. Appending never
//! rewrites earlier lines; a disk that refuses writes delays records (see
//! [`LineLog`]), it does not lose them.

use super::line_log::{Durability, LineLog};
use crate::session::{SessionEvent, Sink};
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

pub struct FlowLog {
    log: LineLog,
}

impl FlowLog {
    /// Opens (appending, creating if needed) the flow log at `path`.
    pub fn open(path: &Path) -> io::Result<FlowLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FlowLog {
            log: LineLog::new(file, Durability::Batched)?,
        })
    }
}

impl Sink for FlowLog {
    fn name(&self) -> &'static str {
        "flows.jsonl"
    }

    fn handle(&mut self, event: &SessionEvent) -> io::Result<()> {
        match event {
            SessionEvent::FlowDone(flow) => {
                let mut line = serde_json::to_vec(flow.as_ref())?;
                line.push(b'\n');
                self.log.push(line)
            }
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.log.flush()
    }
}
