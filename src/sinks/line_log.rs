//! An append-only file of JSON lines that survives a full or failing disk.
//!
//! The evidence files (`findings.jsonl`, `flows.jsonl`, the HAR spool) all
//! append one line per record. [`LineLog`] gives them one contract:
//!
//! - **Whole lines only.** A write that fails part-way is cut back out of
//!   the file (`set_len` to the last whole line), so a reader never meets a
//!   half line followed by the next record.
//! - **Nothing dropped while the disk recovers.** Lines that could not be
//!   written stay queued in memory, in order, and are written by the next
//!   attempt (the next record or the sink thread's idle tick), so evidence
//!   from a disk-full period lands once space is back. The queue is bounded
//!   by [`BACKLOG_LIMIT`]; past it, new lines are counted and dropped, and
//!   the error says how many.
//! - **Errors, not silence.** Every attempt that leaves lines queued returns
//!   the error, which the sink hub reports loudly (once, and again when the
//!   output recovers).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};

/// Bytes of unwritten lines held in memory per file while its disk refuses
/// writes. 64 MiB holds roughly 100k findings or 30k flow records: minutes
/// of heavy traffic, enough to ride out a full disk an operator is clearing.
pub const BACKLOG_LIMIT: usize = 64 << 20;

/// Queued bytes at which a batched log writes without waiting for a flush.
const BATCH_BYTES: usize = 64 << 10;

/// When queued lines reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every line is written as it is pushed (findings: on disk the moment
    /// they are reported).
    Immediate,
    /// Lines are written in batches of ~64 KiB and on [`LineLog::flush`]
    /// (flow records: one write per batch rather than per flow).
    Batched,
}

pub struct LineLog {
    file: File,
    durability: Durability,
    /// File length up to the end of the last whole line written.
    len: u64,
    queued: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    dropped: u64,
    /// A part-written line could not be cut back out: cut it before the
    /// next write, or that write would follow half a line.
    needs_cut: bool,
}

impl LineLog {
    /// Appends to `file`, which must be open for appending; its current end
    /// is taken as the end of its last whole line.
    pub fn new(file: File, durability: Durability) -> io::Result<LineLog> {
        let len = file.metadata()?.len();
        Ok(LineLog {
            file,
            durability,
            len,
            queued: VecDeque::new(),
            queued_bytes: 0,
            dropped: 0,
            needs_cut: false,
        })
    }

    /// Bytes of whole lines in the file: everything before this offset is
    /// complete records.
    pub fn written_len(&self) -> u64 {
        self.len
    }

    /// Lines accepted but not yet in the file.
    pub fn queued_lines(&self) -> usize {
        self.queued.len()
    }

    /// Queues `line` (which must end with `\n`) and, for an immediate log
    /// or a full batch, writes everything queued.
    pub fn push(&mut self, line: Vec<u8>) -> io::Result<()> {
        debug_assert!(line.ends_with(b"\n"), "a line ends with a newline");
        if self.queued_bytes + line.len() > BACKLOG_LIMIT {
            self.dropped += 1;
        } else {
            self.queued_bytes += line.len();
            self.queued.push_back(line);
        }
        if self.durability == Durability::Immediate || self.queued_bytes >= BATCH_BYTES {
            self.write_queued()
        } else if self.dropped > 0 {
            Err(self.backlog_error(io::Error::other("the earlier write failed")))
        } else {
            Ok(())
        }
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_queued()
    }

    fn write_queued(&mut self) -> io::Result<()> {
        if self.needs_cut {
            self.file
                .set_len(self.len)
                .map_err(|err| self.backlog_error(err))?;
            self.needs_cut = false;
        }
        while let Some(line) = self.queued.front() {
            if let Err(err) = self.file.write_all(line) {
                // Cut any part-written line back out; append mode writes at
                // the real end of the file, so a leftover must not stay.
                self.needs_cut = self.file.set_len(self.len).is_err();
                return Err(self.backlog_error(err));
            }
            self.len += line.len() as u64;
            self.queued_bytes -= line.len();
            self.queued.pop_front();
        }
        if self.dropped > 0 {
            let dropped = std::mem::take(&mut self.dropped);
            return Err(io::Error::other(format!(
                "writing again, but {dropped} line(s) were dropped while the \
                 in-memory backlog was full"
            )));
        }
        Ok(())
    }

    fn backlog_error(&self, err: io::Error) -> io::Error {
        io::Error::new(
            err.kind(),
            format!(
                "{err}; {} line(s) held in memory and written when the disk accepts them{}",
                self.queued.len(),
                if self.dropped > 0 {
                    format!(", {} dropped (backlog full)", self.dropped)
                } else {
                    String::new()
                }
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn append(path: &std::path::Path) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn immediate_lines_are_in_the_file_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = LineLog::new(append(&path), Durability::Immediate).unwrap();
        log.push(b"{\"a\":1}\n".to_vec()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
        assert_eq!(log.written_len(), 8);
    }

    #[test]
    fn batched_lines_wait_for_a_flush_or_a_full_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = LineLog::new(append(&path), Durability::Batched).unwrap();
        log.push(b"1\n".to_vec()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        log.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"1\n");
        let big = vec![b'x'; BATCH_BYTES];
        let mut line = big.clone();
        line.push(b'\n');
        log.push(line).unwrap();
        assert_eq!(log.queued_lines(), 0, "a full batch is written at once");
    }

    #[test]
    fn appending_to_an_existing_file_keeps_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, b"old\n").unwrap();
        let mut log = LineLog::new(append(&path), Durability::Immediate).unwrap();
        assert_eq!(log.written_len(), 4);
        log.push(b"new\n".to_vec()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old\nnew\n");
    }

    /// `/dev/full` fails every write with ENOSPC, as a full disk does.
    #[test]
    fn a_failing_disk_keeps_lines_queued_and_says_how_many() {
        let full = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let mut log = LineLog::new(full, Durability::Immediate).unwrap();
        let err = log.push(b"one\n".to_vec()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(err.to_string().contains("1 line(s) held"), "{err}");
        log.push(b"two\n".to_vec()).unwrap_err();
        assert_eq!(log.queued_lines(), 2);
    }
}
