//! Facts hudsucker reports only through `tracing`, turned into flows.
//!
//! hudsucker handles three things internally, out of the handler's sight:
//! the TLS handshake with the client, CONNECT streams that are neither TLS
//! nor HTTP (which it tunnels), and the upstream half of a WebSocket
//! upgrade. It reports their failures as `tracing` events inside the span of
//! the request that caused them (`proxy`, with `client_addr` and `uri`), and
//! the span of the CONNECT or WebSocket task closes when that task ends.
//!
//! The handler registers what it knows about such a connection under the
//! key `(client address, request URI)`, exactly the two fields of hudsucker's
//! span; [`WatchLayer`] finds the entry again from an event's span scope and
//! records the refused handshake, the tunnel, or the WebSocket failure. When
//! the task's span closes the entry is removed, so the registry holds only
//! connections that are alive.

use crate::flow::{Flow, FlowErrorKind, FlowKind, TlsFacts, TlsMode, TunnelReason, TunnelRecord};
use crate::pipeline::{LiveFlow, Pipeline};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Key shared by the handler and hudsucker's spans.
pub(crate) type ConnKey = (SocketAddr, String);

/// A CONNECT whose fate is decided inside hudsucker.
pub(crate) struct ConnectWatch {
    /// The flow as known so far: client, start time, TLS facts.
    pub flow: Mutex<Flow>,
    /// Target of the CONNECT.
    pub host: String,
    pub port: u16,
    pub pipeline: Pipeline,
    /// Set when hudsucker tunnels the stream instead of decrypting it.
    pub tunnel: Mutex<Option<TunnelRecord>>,
}

/// A WebSocket upgrade whose two directions have not both started.
pub(crate) struct WebSocketWatch {
    pub live: LiveFlow,
    /// Directions that have not yet taken their clone of `live`.
    pub waiting: u8,
}

pub(crate) enum Watched {
    Connect(std::sync::Arc<ConnectWatch>),
    WebSocket(WebSocketWatch),
}

static REGISTRY: LazyLock<Mutex<HashMap<ConnKey, Watched>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> std::sync::MutexGuard<'static, HashMap<ConnKey, Watched>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn watch(key: ConnKey, watched: Watched) {
    registry().insert(key, watched);
}

/// Hands one WebSocket direction its clone of the live flow; the entry is
/// dropped once both directions have theirs.
pub(crate) fn take_websocket(key: &ConnKey) -> Option<LiveFlow> {
    let mut registry = registry();
    let Some(Watched::WebSocket(ws)) = registry.get_mut(key) else {
        return None;
    };
    let live = ws.live.clone();
    ws.waiting = ws.waiting.saturating_sub(1);
    if ws.waiting == 0 {
        registry.remove(key);
    }
    Some(live)
}

/// Number of live registry entries for connections from `client` (tests
/// assert that a finished connection leaves nothing behind).
pub fn watched_connections(client: SocketAddr) -> usize {
    registry()
        .keys()
        .filter(|(addr, _)| *addr == client)
        .count()
}

/// Fields of hudsucker's `proxy` span, kept in the span's extensions.
struct ProxySpan(ConnKey);

/// Marks the spans whose close ends a watched task.
struct TaskSpan(ConnKey);

/// The tracing layer; install it with a per-layer filter from
/// [`WatchLayer::wants`].
pub struct WatchLayer;

impl WatchLayer {
    /// What the layer needs: hudsucker's spans, and its warnings and errors.
    ///
    /// Except the spans hudsucker opens around each step of a plain
    /// request (three per request): nothing is read from them, and an
    /// event inside one has the nearest enabled span, the request's
    /// `proxy`, as its parent. The other spans must stay: a span closes
    /// only after its enabled children, and the watch ends a WebSocket
    /// flow when its `websocket` span closes (with only `proxy`,
    /// `process_connect` and `websocket` enabled, WebSocket flows ended
    /// before their messages).
    pub fn wants(meta: &tracing::Metadata<'_>) -> bool {
        meta.target().starts_with("hudsucker")
            && if meta.is_span() {
                !matches!(
                    meta.name(),
                    "handle_request"
                        | "proxy_request"
                        | "handle_response"
                        | "handle_error"
                        | "normalize_request"
                )
            } else {
                *meta.level() <= tracing::Level::WARN
            }
    }
}

impl<S> Layer<S> for WatchLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let name = attrs.metadata().name();
        if name == "proxy" {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            if let Some(addr) = fields.client_addr.and_then(|a| a.parse().ok()) {
                span.extensions_mut()
                    .insert(ProxySpan((addr, fields.uri.unwrap_or_default())));
            }
        } else if name == "process_connect" || name == "websocket" {
            let key = span
                .scope()
                .skip(1)
                .find_map(|s| s.extensions().get::<ProxySpan>().map(|p| p.0.clone()));
            if let Some(key) = key {
                span.extensions_mut().insert(TaskSpan(key));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let key = scope
            .into_iter()
            .find_map(|s| s.extensions().get::<ProxySpan>().map(|p| p.0.clone()));
        let Some(key) = key else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        on_hudsucker_event(&key, &fields);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(key) = span.extensions().get::<TaskSpan>().map(|t| t.0.clone()) else {
            return;
        };
        task_ended(&key);
    }
}

fn on_hudsucker_event(key: &ConnKey, fields: &Fields) {
    let message = fields.message.as_deref().unwrap_or("");
    let detail = fields.error.clone().unwrap_or_else(|| message.to_owned());
    let mut registry = registry();
    match registry.get(key) {
        Some(Watched::Connect(connect)) => {
            let connect = connect.clone();
            drop(registry);
            connect_event(&connect, message, detail);
        }
        Some(Watched::WebSocket(_)) if message.contains("WebSocket") => {
            if let Some(Watched::WebSocket(ws)) = registry.remove(key) {
                ws.live.fail(FlowErrorKind::UpstreamUnreachable, detail);
            }
        }
        _ => {}
    }
}

fn connect_event(connect: &ConnectWatch, message: &str, detail: String) {
    if message.starts_with("Failed to establish TLS connection")
        || message.starts_with("Failed to read TLS client hello")
    {
        let mut flow = lock(&connect.flow).clone();
        flow.kind = FlowKind::TlsRefused;
        let tls = flow.tls.get_or_insert_with(|| TlsFacts {
            mode: TlsMode::Refused,
            sni: None,
            alpn_offered: Vec::new(),
            alert: None,
        });
        tls.mode = TlsMode::Refused;
        tls.alert = Some(detail.clone());
        flow.set_error(FlowErrorKind::ClientTls, detail);
        flow.timing.end = Some(time::OffsetDateTime::now_utc());
        connect.pipeline.record(flow);
    } else if let Some(bytes) = message.strip_prefix("Unknown protocol, read ") {
        *lock(&connect.tunnel) = Some(TunnelRecord {
            host: connect.host.clone(),
            port: connect.port,
            reason: TunnelReason::UnknownProtocol,
            bytes_up: None,
            bytes_down: None,
            first_bytes_hex: Some(hex_from_debug_list(bytes)),
        });
    } else if message.starts_with("Failed to connect to") || message.starts_with("Failed to tunnel")
    {
        lock(&connect.flow).set_error(FlowErrorKind::UpstreamUnreachable, detail);
    }
}

/// A watched task ended: a tunnel becomes a flow; the entry goes.
fn task_ended(key: &ConnKey) {
    let Some(watched) = registry().remove(key) else {
        return;
    };
    let Watched::Connect(connect) = watched else {
        // A WebSocket whose upstream never connected: dropping the entry
        // completes its flow (the failure was recorded from its event).
        return;
    };
    let Some(tunnel) = lock(&connect.tunnel).take() else {
        return;
    };
    let mut flow = lock(&connect.flow).clone();
    flow.kind = FlowKind::Tunnel;
    flow.tunnel = Some(tunnel);
    flow.timing.end = Some(time::OffsetDateTime::now_utc());
    connect.pipeline.record(flow);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// hudsucker prints the peeked bytes as `'[16, 03, 01]'` (`{:02X?}`).
fn hex_from_debug_list(message: &str) -> String {
    let inner = message
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map_or("", |(inner, _)| inner);
    inner
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_lowercase()
}

/// The few fields leakscope reads from hudsucker's spans and events.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    error: Option<String>,
    client_addr: Option<String>,
    uri: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let slot = match field.name() {
            "message" => &mut self.message,
            "error" => &mut self.error,
            "client_addr" => &mut self.client_addr,
            "uri" => &mut self.uri,
            _ => return,
        };
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        *slot = Some(text);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() == "error" {
            // Keep the whole chain: the useful part (the TLS alert) is often
            // a source of the outer I/O error.
            let mut text = value.to_string();
            let mut source = value.source();
            while let Some(err) = source {
                let _ = write!(text, ": {err}");
                source = err.source();
            }
            self.error = Some(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeked_bytes_become_hex() {
        assert_eq!(
            hex_from_debug_list("'[53, 53, 48, 2D]' from upgraded connection"),
            "5353482d"
        );
    }
}
