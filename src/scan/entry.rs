//! One HAR entry turned into the parts of a flow record, ready to replay
//! through the pipeline.
//!
//! An entry without a usable start time, request or URL cannot become a
//! flow: that is a [`Problem`] and the entry is skipped. Anything else odd
//! (a header without a name, a body marked base64 that is not, an
//! unparsable timing) is a warning, and the entry is replayed with what is
//! usable — a partly odd capture still shows what left the device.

use super::body::{content_body, decode_or_keep, encoding_to_undo, is_base64, post_body};
use super::har_input::{
    Entry, Field, JsonPath, NameValue, Problem, Request, Response, Text, Timings, WsMessage,
};
use crate::flow::{Direction, FlowKind, Header, RequestRecord, ResponseRecord, Timing};
use std::net::{Ipv4Addr, SocketAddr};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// Unix times (seconds) between 2000 and 2100 are wall-clock times; other
/// WebSocket message times are on a monotonic clock.
const EPOCH_RANGE: std::ops::RangeInclusive<f64> = 946_684_800.0..=4_102_444_800.0;

/// An entry ready to be replayed.
#[derive(Debug)]
pub struct ScanEntry {
    pub kind: FlowKind,
    pub client_addr: SocketAddr,
    pub timing: Timing,
    pub pageref: Option<String>,
    /// `body` is empty: the body is fed as chunks.
    pub request: RequestRecord,
    pub request_body: Option<Vec<u8>>,
    /// The Content-Encoding the pipeline must undo (see [`encoding_to_undo`]).
    pub request_encoding: Option<String>,
    pub response: Option<ScanResponse>,
    pub messages: Vec<ScanMessage>,
    /// Why the exchange has no response, as the HAR says.
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct ScanResponse {
    pub record: ResponseRecord,
    pub body: Option<Vec<u8>>,
    pub encoding: Option<String>,
}

#[derive(Debug)]
pub struct ScanMessage {
    pub direction: Direction,
    pub opcode: &'static str,
    pub payload: Vec<u8>,
    pub time: Option<OffsetDateTime>,
}

/// Parses a HAR date and time: RFC 3339 as the spec says, other ISO 8601
/// forms some writers use, and (assuming UTC, the bool says so) one
/// without an offset.
pub fn parse_time(text: &str) -> Option<(OffsetDateTime, bool)> {
    let text = text.trim();
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .map(|t| (t, false))
        .or_else(|_| {
            PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|t| (t.assume_utc(), true))
        })
        .ok()
}

/// The start time of an entry, if it has a usable one (for sorting).
pub fn start_of(entry: &Field<Entry>) -> Option<OffsetDateTime> {
    let text = entry.present()?.started_date_time.present()?;
    parse_time(text).map(|(t, _)| t)
}

/// Converts the entry at `path`. Returns the entry and the warnings about
/// it, or the problem that makes it unusable.
pub fn convert(
    entry: Field<Entry>,
    path: &JsonPath<'_>,
) -> Result<(ScanEntry, Vec<Problem>), Problem> {
    let entry = entry.required(path)?;
    let mut warnings = Vec::new();
    let start_path = path.key("startedDateTime");
    let start_text = entry.started_date_time.required(&start_path)?;
    let (start, assumed_utc) = parse_time(&start_text).ok_or_else(|| {
        start_path.problem(format!("{start_text:?} is not an RFC 3339 date and time"))
    })?;
    if assumed_utc {
        warnings.push(start_path.problem("no UTC offset; UTC assumed"));
    }
    let request_path = path.key("request");
    let (request, request_body, request_encoding) = convert_request(
        entry.request.required(&request_path)?,
        &request_path,
        &mut warnings,
    )?;

    let response_path = path.key("response");
    let (response, error) = match entry.response.lenient(&response_path, &mut warnings) {
        Some(response) => convert_response(response, &response_path, &mut warnings),
        None => (None, Some("no response in the HAR".to_owned())),
    };
    let total_ms = entry.time.lenient(&path.key("time"), &mut warnings);
    let ws_path = path.key("_webSocketMessages");
    let raw_messages = entry.web_socket_messages.lenient(&ws_path, &mut warnings);
    let messages = raw_messages.map_or_else(Vec::new, |list| {
        messages(list, start, total_ms, &ws_path, &mut warnings)
    });
    let resource_type = entry
        .resource_type
        .lenient(&path.key("_resourceType"), &mut warnings);
    let websocket = resource_type.is_some_and(|t| t.0.eq_ignore_ascii_case("websocket"))
        || !messages.is_empty()
        || request.url.starts_with("ws://")
        || request.url.starts_with("wss://")
        || response.as_ref().is_some_and(|r| r.record.status == 101);
    let timings = entry.timings.lenient(&path.key("timings"), &mut warnings);
    let timing = timing(start, total_ms, timings, response.is_some());
    let client_addr = entry
        .leakscope
        .present()
        .and_then(|extra| extra.client.present())
        .and_then(|client| client.0.parse().ok())
        .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let pageref = entry.pageref.lenient(&path.key("pageref"), &mut warnings);
    let scan_entry = ScanEntry {
        kind: if websocket {
            FlowKind::WebSocket
        } else {
            FlowKind::Http
        },
        client_addr,
        timing,
        pageref: pageref.map(|t| t.0),
        request,
        request_body,
        request_encoding,
        response,
        messages,
        error,
    };
    Ok((scan_entry, warnings))
}

/// The request record, its body, and the coding to undo on the body.
type RequestParts = (RequestRecord, Option<Vec<u8>>, Option<String>);

fn convert_request(
    request: Request,
    path: &JsonPath<'_>,
    warnings: &mut Vec<Problem>,
) -> Result<RequestParts, Problem> {
    let url_path = path.key("url");
    let url = request.url.required(&url_path)?;
    if url.trim().is_empty() {
        return Err(url_path.problem("empty"));
    }
    let all_headers = headers(request.headers, &path.key("headers"), warnings);
    // Chrome lists HTTP/2 pseudo-headers (`:path`, `:authority`...) among
    // the headers. A live session never sees them as headers, and `:path`
    // would report every URL finding a second time; they only help to
    // complete a relative URL.
    let (pseudo, headers): (Vec<Header>, Vec<Header>) = all_headers
        .into_iter()
        .partition(|h| h.name.starts_with(':'));
    let target = locate(&url, &headers, &pseudo).ok_or_else(|| {
        url_path.problem(format!(
            "{url:?} has no host (not an absolute URL, and no Host header to complete it)"
        ))
    })?;
    let method_path = path.key("method");
    let method = match request.method.lenient(&method_path, warnings) {
        Some(Text(method)) if !method.trim().is_empty() => method,
        _ => {
            warnings.push(method_path.problem("missing; GET assumed"));
            "GET".to_owned()
        }
    };
    let version = request
        .http_version
        .lenient(&path.key("httpVersion"), warnings);
    let body = request
        .post_data
        .lenient(&path.key("postData"), warnings)
        .and_then(|post| post_body(post, &path.key("postData"), warnings));
    let encoding = body.as_deref().and_then(|b| encoding_to_undo(&headers, b));
    let record = RequestRecord {
        method,
        url: target.url,
        host: target.host,
        port: target.port,
        http_version: http_version(version),
        headers,
        body: Default::default(),
    };
    Ok((record, body, encoding))
}

fn convert_response(
    response: Response,
    path: &JsonPath<'_>,
    warnings: &mut Vec<Problem>,
) -> (Option<ScanResponse>, Option<String>) {
    let status_path = path.key("status");
    let status = match response.status.lenient(&status_path, warnings) {
        Some(s) if s.fract() == 0.0 && (0.0..=999.0).contains(&s) => s as u16,
        Some(s) => {
            warnings.push(status_path.problem(format!("{s} is not an HTTP status")));
            0
        }
        None => 0,
    };
    if status == 0 {
        // Browsers and mitmproxy export a failed or blocked request with
        // status 0 and, sometimes, the reason.
        let why = response
            .error
            .lenient(&path.key("_error"), warnings)
            .map_or_else(|| "status 0".to_owned(), |t| t.0);
        return (None, Some(format!("no response in the HAR ({why})")));
    }
    let headers = headers(response.headers, &path.key("headers"), warnings);
    let version = response
        .http_version
        .lenient(&path.key("httpVersion"), warnings);
    let content_path = path.key("content");
    let body = response
        .content
        .lenient(&content_path, warnings)
        .and_then(|content| content_body(content, &content_path, warnings));
    let encoding = body.as_deref().and_then(|b| encoding_to_undo(&headers, b));
    let record = ResponseRecord {
        status,
        http_version: http_version(version),
        headers,
        body: Default::default(),
    };
    (
        Some(ScanResponse {
            record,
            body,
            encoding,
        }),
        None,
    )
}

fn headers(
    field: Field<Vec<Field<NameValue>>>,
    path: &JsonPath<'_>,
    warnings: &mut Vec<Problem>,
) -> Vec<Header> {
    let Some(list) = field.lenient(path, warnings) else {
        return Vec::new();
    };
    let mut headers = Vec::with_capacity(list.len());
    for (index, item) in list.into_iter().enumerate() {
        let item_path = path.index(index);
        let Some(pair) = item.lenient(&item_path, warnings) else {
            continue;
        };
        let name_path = item_path.key("name");
        let name = match pair.name.lenient(&name_path, warnings) {
            Some(Text(name)) if !name.is_empty() => name,
            _ => {
                warnings.push(name_path.problem("missing; header skipped"));
                continue;
            }
        };
        let value = pair.value.lenient(&item_path.key("value"), warnings);
        headers.push(Header {
            name,
            value: value.map(|t| t.0).unwrap_or_default(),
        });
    }
    headers
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Where a request went.
struct Target {
    url: String,
    host: String,
    port: u16,
}

/// The absolute URL, host and port of a request. A relative URL (which
/// chrome-har-capturer writes for WebSocket handshakes) is completed from
/// the `:authority` pseudo-header or the Host header, as the proxy does.
fn locate(url: &str, headers: &[Header], pseudo: &[Header]) -> Option<Target> {
    if let Some((scheme, rest)) = url.split_once("://") {
        let is_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..end];
            // Credentials in the URL are not part of the host.
            let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
            let (host, port) = split_authority(authority, default_port(scheme))?;
            return Some(Target {
                url: url.to_owned(),
                host,
                port,
            });
        }
    }
    let authority = header(pseudo, ":authority").or_else(|| header(headers, "host"))?;
    let scheme = header(pseudo, ":scheme").unwrap_or("http");
    let (host, port) = split_authority(authority, default_port(scheme))?;
    let slash = if url.starts_with('/') { "" } else { "/" };
    Some(Target {
        url: format!("{scheme}://{authority}{slash}{url}"),
        host,
        port,
    })
}

fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        443
    } else {
        80
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → host (brackets removed,
/// as the proxy records it) and port.
fn split_authority(authority: &str, default: u16) -> Option<(String, u16)> {
    let authority = authority.trim();
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            // More than one colon and no brackets: a bare IPv6 address.
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (authority, None),
        }
    };
    let port = match port {
        Some(port) if !port.is_empty() => port.parse().ok()?,
        _ => default,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The version as the proxy writes it (`HTTP/1.1`, `HTTP/2.0`); HAR
/// writers say `h2`, `http/2.0`, `HTTP/1.1`, `unknown`...
fn http_version(version: Option<Text>) -> String {
    let Some(Text(version)) = version else {
        return "unknown".to_owned();
    };
    let lower = version.trim().to_ascii_lowercase();
    let normal = match lower.as_str() {
        "http/1.1" => "HTTP/1.1",
        "http/1.0" => "HTTP/1.0",
        "http/0.9" => "HTTP/0.9",
        "h2" | "h2c" | "http/2" | "http/2.0" => "HTTP/2.0",
        "h3" | "http/3" | "http/3.0" => "HTTP/3.0",
        "" => "unknown",
        _ if lower.starts_with("h3-") => "HTTP/3.0",
        _ => return version,
    };
    normal.to_owned()
}

fn messages(
    list: Vec<Field<WsMessage>>,
    start: OffsetDateTime,
    total_ms: Option<f64>,
    path: &JsonPath<'_>,
    warnings: &mut Vec<Problem>,
) -> Vec<ScanMessage> {
    let mut out = Vec::with_capacity(list.len());
    let mut times = Vec::with_capacity(list.len());
    for (index, item) in list.into_iter().enumerate() {
        let item_path = path.index(index);
        let Some(message) = item.lenient(&item_path, warnings) else {
            continue;
        };
        let kind_path = item_path.key("type");
        let direction = match message.kind.lenient(&kind_path, warnings) {
            Some(Text(kind)) if kind.eq_ignore_ascii_case("send") => Direction::Upstream,
            Some(Text(kind)) if kind.eq_ignore_ascii_case("receive") => Direction::Downstream,
            other => {
                let found = other.map_or_else(|| "missing".to_owned(), |t| format!("{:?}", t.0));
                warnings.push(kind_path.problem(format!(
                    "{found}: expected \"send\" or \"receive\"; message skipped"
                )));
                continue;
            }
        };
        let opcode = message
            .opcode
            .lenient(&item_path.key("opcode"), warnings)
            .unwrap_or(1.0);
        let opcode = match (opcode.fract() == 0.0).then_some(opcode as i64) {
            Some(1) => "text",
            Some(2) => "binary",
            Some(8) => "close",
            Some(9) => "ping",
            Some(10) => "pong",
            _ => "frame",
        };
        let data_path = item_path.key("data");
        let data = message
            .data
            .lenient(&data_path, warnings)
            .unwrap_or_default();
        // Chrome's format: binary payloads are base64 without further note.
        let payload = if opcode == "binary" || is_base64(&message.leakscope_encoding) {
            decode_or_keep(data, &data_path, warnings)
        } else {
            data.into_bytes()
        };
        times.push(message.time.lenient(&item_path.key("time"), warnings));
        out.push(ScanMessage {
            direction,
            opcode,
            payload,
            time: None,
        });
    }
    place_in_time(&mut out, &times, start, total_ms);
    out
}

/// Gives each message its wall-clock time. chrome-har-capturer writes
/// monotonic seconds and an entry `time` that runs to the last message, so
/// its clock is anchored there; other monotonic times are anchored with the
/// first message at the entry's start.
fn place_in_time(
    messages: &mut [ScanMessage],
    times: &[Option<f64>],
    start: OffsetDateTime,
    total_ms: Option<f64>,
) {
    let known = || times.iter().flatten().copied().filter(|t| t.is_finite());
    let monotonic_base = known().find(|t| !EPOCH_RANGE.contains(t)).map(|_| {
        let last = known().fold(f64::MIN, f64::max);
        match total_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
            Some(ms) => last - ms / 1000.0,
            None => known().fold(f64::MAX, f64::min),
        }
    });
    for (message, time) in messages.iter_mut().zip(times) {
        let Some(seconds) = time.filter(|t| t.is_finite()) else {
            continue;
        };
        message.time = match monotonic_base {
            None => OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128).ok(),
            Some(base) => after(start, (seconds - base) * 1000.0),
        };
    }
}

/// `start` plus `ms` milliseconds, if that is a representable time.
fn after(start: OffsetDateTime, ms: f64) -> Option<OffsetDateTime> {
    start.checked_add(Duration::checked_seconds_f64(ms / 1000.0)?)
}

/// The flow's timing from `startedDateTime`, `time` and `timings`. HAR's
/// `connect` includes `ssl`, so `ssl` is not added again.
fn timing(
    start: OffsetDateTime,
    total_ms: Option<f64>,
    timings: Option<Timings>,
    has_response: bool,
) -> Timing {
    let ms = |field: &Field<f64>| {
        field
            .present()
            .copied()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(0.0)
    };
    let (before_send, send, wait, receive) = timings.as_ref().map_or((0.0, 0.0, 0.0, 0.0), |t| {
        (
            ms(&t.blocked) + ms(&t.dns) + ms(&t.connect),
            ms(&t.send),
            ms(&t.wait),
            ms(&t.receive),
        )
    });
    let request_end = after(start, before_send + send).unwrap_or(start);
    let response_start = has_response.then(|| after(request_end, wait).unwrap_or(request_end));
    // Always set: a replayed flow left without an end would be given the
    // moment of the scan.
    let end = total_ms
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(|total| after(start, total))
        .or_else(|| after(start, before_send + send + wait + receive))
        .unwrap_or(request_end);
    Timing {
        start,
        request_end: Some(request_end),
        response_start,
        end: Some(end),
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
