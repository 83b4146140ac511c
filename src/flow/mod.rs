//! The flow record: one typed record per thing the proxy saw.
//!
//! A [`Flow`] is the unit every later stage works on: detectors read its
//! head and body chunks while it is live, sinks (terminal, JSONL, HAR) get
//! the completed record. It deliberately holds no hyper or hudsucker types,
//! so that offline input (a HAR file from another tool) can produce the same
//! record.
//!
//! Contract: a completed flow has exactly one [`FlowKind`]. An HTTP flow has a
//! `request`; it has a `response` when the upstream answered, and an `error`
//! when something failed — both can be present (the response started, then
//! its body broke off). Tunnels and refused TLS handshakes have no request.

pub mod capture;
pub mod decode;

use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

pub use capture::{BodyCapture, BodyRecord};

/// Identifier of a flow, unique within one process (and so one session).
pub type FlowId = u64;

/// Hands out flow ids; ids start at 1 so 0 never names a flow.
pub fn next_flow_id() -> FlowId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What kind of exchange a flow records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    /// An HTTP request/response exchange (plain or decrypted).
    Http,
    /// An HTTP upgrade to WebSocket; messages are in [`Flow::websocket`].
    WebSocket,
    /// Bytes relayed without decryption (ignored host, or neither TLS nor HTTP).
    Tunnel,
    /// The client aborted the TLS handshake with leakscope's certificate.
    TlsRefused,
}

/// Which direction data travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From the app (client) towards the server.
    Upstream,
    /// From the server back to the app.
    Downstream,
}

/// One header line, as received. Values that are not UTF-8 are kept with
/// replacement characters: the record is evidence to read, not to replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// The request half of an HTTP or WebSocket flow.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// Absolute URL (scheme, host, port when not default, path, query).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// `HTTP/1.1`, `HTTP/2.0`, ... as the client spoke it.
    pub http_version: String,
    pub headers: Vec<Header>,
    pub body: BodyRecord,
}

/// The response half of an HTTP flow.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseRecord {
    pub status: u16,
    pub http_version: String,
    pub headers: Vec<Header>,
    pub body: BodyRecord,
}

/// Points in time of a flow. `start` is always known; the others are
/// absent when that stage never happened.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// When the request (head and body) had been fully read from the client.
    #[serde(with = "time::serde::rfc3339::option")]
    pub request_end: Option<OffsetDateTime>,
    /// When the response head arrived from upstream.
    #[serde(with = "time::serde::rfc3339::option")]
    pub response_start: Option<OffsetDateTime>,
    /// When the flow ended (last byte relayed, or the failure).
    #[serde(with = "time::serde::rfc3339::option")]
    pub end: Option<OffsetDateTime>,
}

impl Timing {
    pub fn starting_now() -> Timing {
        Timing {
            start: OffsetDateTime::now_utc(),
            request_end: None,
            response_start: None,
            end: None,
        }
    }

    /// Whole-flow duration in milliseconds, when the flow has ended.
    pub fn duration_ms(&self) -> Option<f64> {
        self.end
            .map(|end| (end - self.start).as_seconds_f64() * 1000.0)
    }
}

/// How leakscope handled the TLS layer of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Decrypted with a leaf certificate from leakscope's CA.
    Intercepted,
    /// Relayed untouched (`--ignore-hosts`).
    PassedThrough,
    /// The client rejected leakscope's certificate.
    Refused,
}

/// TLS facts about the client connection a flow travelled on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFacts {
    pub mode: TlsMode,
    /// Server name the client asked for (SNI), if it sent one.
    pub sni: Option<String>,
    /// ALPN protocols the client offered, in its order.
    pub alpn_offered: Vec<String>,
    /// Why the handshake failed, as the TLS stack reported it
    /// (for example `received fatal alert: UnknownCA`).
    pub alert: Option<String>,
}

/// A connection relayed without decryption.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelRecord {
    /// Target of the CONNECT request.
    pub host: String,
    pub port: u16,
    pub reason: TunnelReason,
    /// Bytes relayed from the client to the server; `None` when the bytes
    /// were relayed by a path that does not count them (see docs).
    pub bytes_up: Option<u64>,
    /// Bytes relayed from the server to the client.
    pub bytes_down: Option<u64>,
    /// First bytes the client sent (hex, at most 16 bytes): how an unknown
    /// protocol can be recognised later.
    pub first_bytes_hex: Option<String>,
}

/// Why a CONNECT was tunnelled rather than decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelReason {
    /// The host matched `--ignore-hosts`.
    IgnoredHost,
    /// The client's first bytes were neither TLS nor HTTP.
    UnknownProtocol,
}

/// One WebSocket message as relayed.
#[derive(Debug, Clone, Serialize)]
pub struct WsMessage {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub direction: Direction,
    /// `text`, `binary`, `ping`, `pong` or `close`.
    pub opcode: &'static str,
    /// Full payload length on the wire.
    pub length: usize,
    /// Payload as captured (bounded by the flow's body limit).
    #[serde(with = "capture::bytes_as_text_or_base64")]
    pub data: bytes::Bytes,
    /// True when `data` is shorter than `length`.
    pub truncated: bool,
}

/// WebSocket side of a flow.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WebSocketRecord {
    pub messages: Vec<WsMessage>,
    /// Messages relayed but not kept because the capture budget was spent.
    pub messages_dropped: u64,
}

/// Why a flow did not complete normally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowError {
    pub kind: FlowErrorKind,
    /// Human-readable detail, never containing credentials.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowErrorKind {
    /// The upstream could not be reached or refused the request.
    UpstreamUnreachable,
    /// The upstream TLS certificate did not verify.
    UpstreamCertificate,
    /// A body stream broke off before its end.
    BodyInterrupted,
    /// The client went away before the exchange ended.
    ClientAborted,
    /// A peer went quiet for longer than a timeout (`--idle-timeout`).
    Timeout,
    /// The TLS handshake with the client failed.
    ClientTls,
    /// leakscope refused the request (access control).
    Refused,
    /// Something else went wrong while relaying.
    Other,
}

/// The record of one flow.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    pub id: FlowId,
    pub kind: FlowKind,
    pub client_addr: SocketAddr,
    pub timing: Timing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<FlowError>,
}

impl Flow {
    /// A flow with nothing but its identity and start time.
    pub fn new(kind: FlowKind, client_addr: SocketAddr) -> Flow {
        Flow {
            id: next_flow_id(),
            kind,
            client_addr,
            timing: Timing::starting_now(),
            request: None,
            response: None,
            tls: None,
            websocket: None,
            tunnel: None,
            error: None,
        }
    }

    /// Host this flow talked to, whatever its kind.
    pub fn host(&self) -> &str {
        if let Some(req) = &self.request {
            &req.host
        } else if let Some(tunnel) = &self.tunnel {
            &tunnel.host
        } else {
            self.tls
                .as_ref()
                .and_then(|t| t.sni.as_deref())
                .unwrap_or_default()
        }
    }

    /// Records the first error only: later errors are usually consequences.
    /// One exception: when the upstream cannot be reached, hyper drops the
    /// unread request body *before* reporting why, so an interrupted body
    /// gives way to the upstream failure that caused it.
    pub fn set_error(&mut self, kind: FlowErrorKind, message: impl Into<String>) {
        let caused_by_upstream = matches!(
            (self.error.as_ref().map(|e| e.kind), kind),
            (
                Some(FlowErrorKind::BodyInterrupted),
                FlowErrorKind::UpstreamUnreachable | FlowErrorKind::UpstreamCertificate
            )
        );
        if self.error.is_none() || caused_by_upstream {
            self.error = Some(FlowError {
                kind,
                message: message.into(),
            });
        }
    }

    /// A POST to a loopback origin whose record holds `captured` as its
    /// request body, for tests of what carries flows.
    #[cfg(test)]
    pub(crate) fn posted(captured: &[u8]) -> Flow {
        let mut flow = Flow::new(FlowKind::Http, "127.0.0.1:1".parse().expect("an address"));
        flow.request = Some(RequestRecord {
            method: "POST".into(),
            url: "http://127.0.0.1/".into(),
            host: "127.0.0.1".into(),
            port: 80,
            http_version: "HTTP/1.1".into(),
            headers: Vec::new(),
            body: BodyRecord {
                captured: captured.to_vec().into(),
                ..Default::default()
            },
        });
        flow
    }

    /// Captured payload bytes the record holds (bodies and WebSocket
    /// messages): what it costs to keep the record queued.
    pub fn captured_bytes(&self) -> u64 {
        let body = |b: &BodyRecord| b.captured.len() as u64;
        let ws = self.websocket.iter().flat_map(|w| &w.messages);
        self.request.as_ref().map_or(0, |r| body(&r.body))
            + self.response.as_ref().map_or(0, |r| body(&r.body))
            + ws.map(|m| m.data.len() as u64).sum::<u64>()
    }
}
