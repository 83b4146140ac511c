//! The live terminal log: one line per completed flow.
//!
//! Lines fit an 80-column terminal: fixed-width time, method, status, size
//! and duration columns first, then as much of host+path as fits. Colour is
//! used only when the output is a terminal. The writer is injected, so
//! tests read exactly what a tester would see.

use crate::consent::PhaseChange;
use crate::detect::finding::{Finding, Party};
use crate::flow::{Flow, FlowId, FlowKind, TlsMode};
use crate::session::{SessionEvent, Sink};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

/// Findings shown under one flow at most; the rest are counted.
const FINDINGS_SHOWN: usize = 20;

/// Writes the live log to any writer.
pub struct TerminalLog {
    out: Box<dyn Write + Send>,
    color: bool,
    width: usize,
    /// Findings waiting for their flow's line (flows still in flight).
    pending: HashMap<FlowId, Vec<Arc<Finding>>>,
}

impl TerminalLog {
    /// `width` is the terminal width in columns (lines never exceed it).
    pub fn new(out: Box<dyn Write + Send>, color: bool, width: usize) -> TerminalLog {
        TerminalLog {
            out,
            color,
            width: width.max(40),
            pending: HashMap::new(),
        }
    }

    /// The log on stdout: colour when stdout is a terminal, width from
    /// `COLUMNS` (80 when unset).
    pub fn stdout() -> TerminalLog {
        use std::io::IsTerminal;
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(80);
        TerminalLog::new(Box::new(io::stdout()), io::stdout().is_terminal(), width)
    }
}

impl Sink for TerminalLog {
    fn name(&self) -> &'static str {
        "terminal"
    }

    fn handle(&mut self, event: &SessionEvent) -> io::Result<()> {
        match event {
            SessionEvent::FlowDone(flow) => {
                let line = flow_line(flow, self.width);
                let color = if self.color { line_color(flow) } else { None };
                self.write_line(&line, color)?;
                let findings = self.pending.remove(&flow.id).unwrap_or_default();
                for finding in findings.iter().take(FINDINGS_SHOWN) {
                    let color = if finding.violations.is_empty() {
                        "33"
                    } else {
                        "1;31"
                    };
                    let line = finding_line(finding, self.width);
                    self.write_line(&line, self.color.then_some(color))?;
                }
                if findings.len() > FINDINGS_SHOWN {
                    let more = format!(
                        "      … {} more findings in findings.jsonl",
                        findings.len() - FINDINGS_SHOWN
                    );
                    self.write_line(&more, None)?;
                }
                Ok(())
            }
            SessionEvent::Finding(finding) => {
                self.pending
                    .entry(finding.flow_id)
                    .or_default()
                    .push(finding.clone());
                Ok(())
            }
            SessionEvent::PhaseChanged(change) => {
                let line = phase_banner(change, self.width);
                self.write_line(&line, self.color.then_some("1;36"))
            }
            SessionEvent::FlowLabels(_) => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl TerminalLog {
    fn write_line(&mut self, line: &str, color: Option<&str>) -> io::Result<()> {
        match color {
            Some(code) => writeln!(self.out, "\x1b[{code}m{line}\x1b[0m"),
            None => writeln!(self.out, "{line}"),
        }
    }
}

/// `──── phase: consented at 20:31:05 ────`, as wide as the terminal.
pub fn phase_banner(change: &PhaseChange, width: usize) -> String {
    let at = change.since.to_offset(local_offset());
    let label = format!(
        " phase: {} at {:02}:{:02}:{:02} ",
        change.phase,
        at.hour(),
        at.minute(),
        at.second()
    );
    let side = width.saturating_sub(label.chars().count()) / 2;
    let rule = "─".repeat(side.max(2));
    ellipsize(&format!("{rule}{label}{rule}"), width)
}

/// `      ! imei (md5) in body → Umeng+ Analytics  pre-consent, third-party`
pub fn finding_line(finding: &Finding, width: usize) -> String {
    let recipient = match (&finding.sdk, finding.party) {
        (Some(sdk), _) => sdk.name.clone(),
        (None, Party::First) => "first party".to_owned(),
        (None, Party::Third) => format!("{} (third party)", finding.host),
    };
    let violations: Vec<&str> = finding.violations.iter().map(|v| v.name()).collect();
    let mark = if violations.is_empty() { '·' } else { '!' };
    let line = format!(
        "      {mark} {} ({}) in {} → {}  {}",
        finding.identifier,
        finding.encoding,
        finding.place,
        recipient,
        violations.join(", ")
    );
    ellipsize(line.trim_end(), width)
}

/// ANSI colour of a flow's line: red for failures, yellow for tunnels and
/// client errors, none for the ordinary case.
fn line_color(flow: &Flow) -> Option<&'static str> {
    let status = flow.response.as_ref().map_or(0, |r| r.status);
    match flow.kind {
        FlowKind::TlsRefused => Some("31"),
        _ if flow.error.is_some() || status >= 500 => Some("31"),
        FlowKind::Tunnel => Some("33"),
        _ if status >= 400 => Some("33"),
        _ => None,
    }
}

/// One log line, at most `width` characters.
pub fn flow_line(flow: &Flow, width: usize) -> String {
    let time = flow.timing.start.to_offset(local_offset());
    let clock = format!(
        "{:02}:{:02}:{:02}",
        time.hour(),
        time.minute(),
        time.second()
    );
    let (method, status, size, target) = columns(flow);
    let duration = flow
        .timing
        .duration_ms()
        .map_or_else(|| "-".into(), human_ms);
    let head = format!("{clock} {method:<7} {status:>3} {size:>7} {duration:>6} ");
    let room = width.saturating_sub(head.chars().count());
    format!("{head}{}", ellipsize(&target, room))
}

fn columns(flow: &Flow) -> (String, String, String, String) {
    let error = flow.error.as_ref().map(|e| e.message.as_str());
    match flow.kind {
        FlowKind::TlsRefused => {
            let tls = flow.tls.as_ref();
            let alert = tls
                .and_then(|t| t.alert.as_deref())
                .unwrap_or("handshake failed");
            let target = format!("{} TLS refused: {alert}", flow.host());
            ("TLS".into(), "---".into(), "-".into(), target)
        }
        FlowKind::Tunnel => {
            let tunnel = flow.tunnel.as_ref();
            let bytes = tunnel.and_then(|t| Some(t.bytes_up? + t.bytes_down?));
            let port = tunnel.map_or(0, |t| t.port);
            let passthrough = flow
                .tls
                .as_ref()
                .is_some_and(|t| t.mode == TlsMode::PassedThrough);
            let what = if passthrough { "passthrough" } else { "tunnel" };
            let mut target = format!("{}:{port} ({what})", flow.host());
            if let Some(error) = error {
                target.push_str(&format!(" {error}"));
            }
            (
                "CONNECT".into(),
                "---".into(),
                bytes.map_or_else(|| "?".into(), human_bytes),
                target,
            )
        }
        FlowKind::Http | FlowKind::WebSocket => http_columns(flow, error),
    }
}

fn http_columns(flow: &Flow, error: Option<&str>) -> (String, String, String, String) {
    let request = flow.request.as_ref();
    let method = if flow.kind == FlowKind::WebSocket {
        "WS".to_owned()
    } else {
        request.map_or_else(|| "?".into(), |r| r.method.clone())
    };
    let status = flow
        .response
        .as_ref()
        .map_or_else(|| "ERR".to_owned(), |r| r.status.to_string());
    let size = match (&flow.response, &flow.websocket) {
        (_, Some(ws)) => format!("{}msg", ws.messages.len() as u64 + ws.messages_dropped),
        (Some(r), None) => human_bytes(r.body.wire_size),
        (None, None) => "-".into(),
    };
    let mut target = request.map_or_else(String::new, |r| strip_scheme(&r.url).to_owned());
    if let Some(error) = error {
        target.push_str(&format!(" [{error}]"));
    }
    (method, status, size, target)
}

fn strip_scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

fn ellipsize(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_owned();
    }
    let kept: String = text.chars().take(room.saturating_sub(1)).collect();
    format!("{kept}…")
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1000 => format!("{n}B"),
        1000..1_000_000 => format!("{:.1}kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}MB", n as f64 / 1e6),
        _ => format!("{:.1}GB", n as f64 / 1e9),
    }
}

fn human_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

/// The machine's UTC offset, read once; UTC when it cannot be determined
/// (the `time` crate refuses in multi-threaded processes on some systems).
fn local_offset() -> time::UtcOffset {
    static OFFSET: std::sync::OnceLock<time::UtcOffset> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{BodyRecord, RequestRecord, ResponseRecord};

    fn http_flow(url: &str, status: u16, size: u64) -> Flow {
        let mut flow = Flow::new(FlowKind::Http, "127.0.0.1:5000".parse().unwrap());
        flow.request = Some(RequestRecord {
            method: "POST".into(),
            url: url.into(),
            host: "h".into(),
            port: 443,
            http_version: "HTTP/2.0".into(),
            headers: vec![],
            body: BodyRecord::default(),
        });
        flow.response = Some(ResponseRecord {
            status,
            http_version: "HTTP/2.0".into(),
            headers: vec![],
            body: BodyRecord {
                wire_size: size,
                ..Default::default()
            },
        });
        flow.timing.end = Some(flow.timing.start + time::Duration::milliseconds(42));
        flow
    }

    #[test]
    fn line_fits_80_columns_and_keeps_the_essentials() {
        let long = format!("https://api.example.com/{}", "x".repeat(200));
        let line = flow_line(&http_flow(&long, 201, 12_345), 80);
        assert_eq!(line.chars().count(), 80);
        assert!(line.contains("POST"));
        assert!(line.contains("201"));
        assert!(line.contains("12.3kB"));
        assert!(line.contains("42ms"));
        assert!(line.contains("api.example.com/xxx"));
        assert!(line.ends_with('…'));
    }

    #[test]
    fn colour_only_when_asked() {
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().write(b)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let flow = std::sync::Arc::new(http_flow("http://h/x", 500, 1));
        for color in [false, true] {
            let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut log = TerminalLog::new(Box::new(Shared(buf.clone())), color, 80);
            log.handle(&SessionEvent::FlowDone(flow.clone())).unwrap();
            let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
            assert_eq!(text.contains('\x1b'), color, "{text:?}");
            assert!(text.contains("h/x"));
        }
    }
}
