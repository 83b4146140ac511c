//! `flows.jsonl`: every completed flow record, one JSON object per line.
//!
//! Lines are written as flows complete and flushed whenever the event
//! queue runs dry, so a crash loses at most the flows of the last moment.
//! Appending never rewrites earlier lines.

use crate::session::{SessionEvent, Sink};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub struct FlowLog {
    out: BufWriter<File>,
}

impl FlowLog {
    /// Opens (appending, creating if needed) the flow log at `path`.
    pub fn open(path: &Path) -> io::Result<FlowLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FlowLog {
            out: BufWriter::new(file),
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
                serde_json::to_writer(&mut self.out, flow.as_ref())?;
                self.out.write_all(b"\n")
            }
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
