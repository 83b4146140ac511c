//! `flows.jsonl`: every completed flow record, one JSON object per line,
//! without the captured body bytes: the HAR holds those, and writing each
//! body twice (as escaped text or base64) was most of what a 1 MiB download
//! cost the proxy. Sizes, codings and truncation stay, so the record still
//! says what was sent.
//!
//! Lines are written in batches and whenever the event queue runs dry, so a
//! crash loses at most the flows of the last moment. Appending never
//! rewrites earlier lines; a disk that refuses writes delays records (see
//! [`LineLog`]), it does not lose them.

use super::line_log::{Durability, LineLog};
use crate::flow::Flow;
use crate::session::{SessionEvent, Sink};
use bytes::Bytes;
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
                let mut line = serde_json::to_vec(&without_bodies(flow))?;
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

/// The record with both captured bodies left out (see the module docs).
fn without_bodies(flow: &Flow) -> Flow {
    let mut flow = flow.clone();
    if let Some(req) = &mut flow.request {
        req.body.captured = Bytes::new();
    }
    if let Some(res) = &mut flow.response {
        res.body.captured = Bytes::new();
    }
    flow
}
