//! The local control API, and switching phases.
//!
//! `--control 127.0.0.1:8081` (the default) serves:
//! - `POST /phase` with `{"phase": "consented"}`: switch phase;
//! - `GET /phase`: the current phase and since when;
//! - `GET /findings`: `findings.jsonl` as written so far (from disk, so the
//!   answer costs no memory however long the session).
//!
//! A web page in the tester's browser must not be able to drive it: any
//! request carrying an `Origin` header (which browsers add to cross-origin
//! requests) is refused, and `POST` requires a JSON content type, which a
//! plain HTML form cannot send.

use crate::consent::{ConsentPhase, PhaseChange, PhaseClock};
use crate::session::{SessionEvent, SessionTx};
use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hudsucker::hyper::body::Frame;
use hudsucker::hyper::body::Incoming;
use hudsucker::hyper::header::{self, HeaderValue};
use hudsucker::hyper::service::service_fn;
use hudsucker::hyper::{Method, Request, Response, StatusCode};
use hudsucker::hyper_util::rt::{TokioExecutor, TokioIo};
use hudsucker::hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Switches the session's phase and announces the change to the sinks.
#[derive(Clone)]
pub struct PhaseSwitch {
    clock: PhaseClock,
    tx: SessionTx,
}

impl PhaseSwitch {
    pub fn new(clock: PhaseClock, tx: SessionTx) -> PhaseSwitch {
        PhaseSwitch { clock, tx }
    }

    pub fn current(&self) -> PhaseChange {
        self.clock.current()
    }

    /// Switches to `phase`; announces it when it is a change.
    pub fn switch(&self, phase: ConsentPhase) -> PhaseChange {
        self.switch_at(phase, time::OffsetDateTime::now_utc())
    }

    /// Switches to `phase` as of `since` (offline scans); announces it when
    /// it is a change.
    pub fn switch_at(&self, phase: ConsentPhase, since: time::OffsetDateTime) -> PhaseChange {
        if let Some(change) = self.clock.switch_at(phase, since) {
            self.tx.send(SessionEvent::PhaseChanged(change));
        }
        self.clock.current()
    }
}

type Reply = BoxBody<Bytes, std::io::Error>;

/// Largest request body the API reads.
const MAX_BODY: usize = 4096;

struct Api {
    phases: PhaseSwitch,
    findings: PathBuf,
}

/// Binds `addr` and serves the API until the runtime stops. Returns the
/// bound address.
pub async fn serve(
    addr: SocketAddr,
    phases: PhaseSwitch,
    findings: PathBuf,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let api = Arc::new(Api { phases, findings });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let api = api.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, std::convert::Infallible>(api.answer(req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

impl Api {
    async fn answer(&self, req: Request<Incoming>) -> Response<Reply> {
        if req.headers().contains_key(header::ORIGIN) {
            return reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                "cross-origin requests are refused\n",
            );
        }
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/phase") => phase_reply(self.phases.current()),
            (&Method::POST, "/phase") => self.post_phase(req).await,
            (&Method::GET, "/findings") => self.findings().await,
            (_, "/phase" | "/findings") => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n",
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "try GET /phase, POST /phase or GET /findings\n",
            ),
        }
    }

    async fn post_phase(&self, req: Request<Incoming>) -> Response<Reply> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain",
                "send Content-Type: application/json\n",
            );
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain",
                    "body too large\n",
                );
            }
        };
        #[derive(serde::Deserialize)]
        struct Wanted {
            phase: String,
        }
        let wanted: Wanted = match serde_json::from_slice(&body) {
            Ok(w) => w,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    &format!("expected {{\"phase\": \"...\"}}: {e}\n"),
                );
            }
        };
        match wanted.phase.parse::<ConsentPhase>() {
            Ok(phase) => phase_reply(self.phases.switch(phase)),
            Err(e) => reply(StatusCode::BAD_REQUEST, "text/plain", &format!("{e}\n")),
        }
    }

    async fn findings(&self) -> Response<Reply> {
        match tokio::fs::File::open(&self.findings).await {
            Ok(file) => {
                let frames = tokio_util::io::ReaderStream::new(file).map_ok(Frame::data);
                let mut res = Response::new(BoxBody::new(StreamBody::new(frames)));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                );
                res
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                reply(StatusCode::OK, "application/x-ndjson", "")
            }
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                &format!("reading findings: {e}\n"),
            ),
        }
    }
}

fn phase_reply(change: PhaseChange) -> Response<Reply> {
    let body = serde_json::to_string(&change).unwrap_or_default() + "\n";
    reply(StatusCode::OK, "application/json", &body)
}

fn reply(status: StatusCode, content_type: &'static str, body: &str) -> Response<Reply> {
    let full = Full::new(Bytes::from(body.to_owned())).map_err(|never| match never {});
    let mut res = Response::new(BoxBody::new(full));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// `leakscope mark PHASE`: asks a running session's control API to switch.
/// Blocking and dependency-free on purpose: it is a one-shot command.
pub fn mark(addr: SocketAddr, phase: ConsentPhase) -> Result<String, String> {
    use std::io::{Read, Write};
    let body = format!("{{\"phase\":\"{phase}\"}}");
    let request = format!(
        "POST /phase HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let timeout = Some(std::time::Duration::from_secs(5));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .map_err(|e| format!("cannot reach the control API at {addr}: {e} (is `leakscope run` running with --control {addr}?)"))?;
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut response = String::new();
    stream
        .take(64 * 1024)
        .read_to_string(&mut response)
        .map_err(|e| format!("reading the answer from {addr}: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body.trim().to_owned())
    } else {
        Err(format!(
            "the control API at {addr} answered {status:?}: {}",
            body.trim()
        ))
    }
}
