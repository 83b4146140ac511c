//! The HAR 1.2 shape of leakscope's records, and the pure conversions from
//! a [`Flow`] to it.
//!
//! Everything here is a function of its inputs: no I/O, no clock. The
//! writer ([`super::har`]) decides *when* and *where*; this module decides
//! *what* one entry looks like. Field names
//! follow the HAR 1.2 spec; leakscope's own data lives in fields starting
//! with `_`, which HAR readers ignore.
//!
//! Conversions never fail: a flow missing a part the spec requires (an
//! HTTP flow without a response, say) gets that part with "unknown" values
//! (`status: 0`, sizes `-1`) and the reason in `_leakscope.error`.

use super::har_body::{BodySlot, BodyText};
use crate::consent::ConsentPhase;
use crate::detect::finding::{Finding, FlowLabels, Party, SdkInfo};
use crate::flow::{
    BodyRecord, Direction, Flow, FlowError, FlowId, FlowKind, Header, TlsFacts, WsMessage,
};
use base64::Engine;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use time::macros::format_description;

/// What the writer knows about a flow besides its record: its page, and
/// the labels and findings the inspector sent while it was in flight.
pub struct EntryContext<'a> {
    /// Id of the page (consent phase period) the flow belongs to.
    pub pageref: &'a str,
    /// Phase of that page: the flow's phase when nothing better is known.
    pub page_phase: ConsentPhase,
    pub labels: Option<&'a FlowLabels>,
    pub findings: &'a [Arc<Finding>],
}

/// One `log.entries` item.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<'a> {
    pub pageref: &'a str,
    pub started_date_time: String,
    pub time: f64,
    pub request: Request<'a>,
    pub response: Response<'a>,
    pub cache: Cache,
    pub timings: Timings,
    pub connection: String,
    /// `"websocket"` for WebSocket flows: what Chrome's HAR import needs to
    /// show the messages.
    #[serde(rename = "_resourceType", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<&'static str>,
    #[serde(rename = "_webSocketMessages", skip_serializing_if = "Option::is_none")]
    pub web_socket_messages: Option<Vec<WsFrame>>,
    #[serde(rename = "_leakscope")]
    pub leakscope: EntryExtra<'a>,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub http_version: &'a str,
    pub cookies: Vec<Cookie>,
    pub headers: &'a [Header],
    pub query_string: Vec<NameValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData<'a>>,
    pub headers_size: i64,
    pub body_size: i64,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response<'a> {
    pub status: u16,
    pub status_text: &'static str,
    pub http_version: &'a str,
    pub cookies: Vec<Cookie>,
    pub headers: &'a [Header],
    pub content: Content<'a>,
    #[serde(rename = "redirectURL")]
    pub redirect_url: &'a str,
    pub headers_size: i64,
    pub body_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'static str>,
}

/// A name/value pair (query parameter, form parameter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

impl NameValue {
    fn new(name: &str, value: &str) -> NameValue {
        NameValue {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// RFC 3339, as the spec's schema requires (`date-time`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Cookie {
    fn new(name: &str, value: &str) -> Cookie {
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        Cookie {
            name,
            value,
            ..Cookie::default()
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData<'a> {
    pub mime_type: &'a str,
    pub text: BodyText<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<NameValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `"base64"` when `text` is base64 of a body that is not UTF-8.
    #[serde(rename = "_encoding", skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    #[serde(rename = "_truncated", skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Content<'a> {
    /// Decoded size in bytes (-1 when there was no response).
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<i64>,
    pub mime_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<BodyText<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(rename = "_truncated", skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    #[serde(rename = "_decodeError", skip_serializing_if = "Option::is_none")]
    pub decode_error: Option<&'a str>,
}

/// Always empty: leakscope sees no browser cache.
#[derive(Default, Serialize)]
pub struct Cache {}

/// Milliseconds. `-1` marks the optional phases leakscope cannot observe;
/// `send`, `wait` and `receive` are required to be non-negative, so an
/// unknown one is `0`.
#[derive(Debug, Serialize)]
pub struct Timings {
    pub blocked: f64,
    pub dns: f64,
    pub connect: f64,
    pub ssl: f64,
    pub send: f64,
    pub wait: f64,
    pub receive: f64,
}

/// A WebSocket message in Chrome's `_webSocketMessages` format.
#[derive(Debug, Serialize)]
pub struct WsFrame {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub opcode: u8,
    /// Text, or base64 for binary frames (and for other frames whose
    /// payload is not UTF-8, marked by `_encoding`).
    pub data: String,
    #[serde(rename = "_encoding", skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// Full payload length, present when `data` was cut at the body limit.
    #[serde(rename = "_length", skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
}

/// leakscope's own data about an entry.
#[derive(Serialize)]
pub struct EntryExtra<'a> {
    pub flow_id: FlowId,
    pub kind: FlowKind,
    pub phase: ConsentPhase,
    pub party: Option<Party>,
    pub sdk: Option<&'a SdkInfo>,
    pub findings: FindingList<'a>,
    pub tls: Option<&'a TlsFacts>,
    pub error: Option<&'a FlowError>,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_messages_dropped: Option<u64>,
}

/// Findings serialized exactly as `findings.jsonl` writes them.
pub struct FindingList<'a>(pub &'a [Arc<Finding>]);

impl Serialize for FindingList<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        // serde has no impl for Arc without its `rc` feature; the inner
        // value's impl is the one findings.jsonl uses.
        ser.collect_seq(self.0.iter().map(|f| f.as_ref()))
    }
}

/// The HAR entry of an HTTP or WebSocket flow.
pub fn entry<'a>(flow: &'a Flow, ctx: EntryContext<'a>) -> Entry<'a> {
    // Labels are the inspector's word on the flow; a finding carries the
    // same labels, and the page is the fallback for uninspected flows.
    let (phase, party, sdk) = match (ctx.labels, ctx.findings.first()) {
        (Some(l), _) => (l.phase, Some(l.party), l.sdk.as_ref()),
        (None, Some(f)) => (f.phase, Some(f.party), f.sdk.as_ref()),
        (None, None) => (ctx.page_phase, None, None),
    };
    let ws = flow.websocket.as_ref();
    let timings = timings(flow);
    Entry {
        pageref: ctx.pageref,
        started_date_time: har_time(flow.timing.start),
        time: total_ms(flow, &timings),
        request: request(flow),
        response: response(flow),
        cache: Cache {},
        timings,
        connection: flow.client_addr.port().to_string(),
        resource_type: (flow.kind == FlowKind::WebSocket).then_some("websocket"),
        web_socket_messages: ws.map(|ws| ws.messages.iter().map(ws_frame).collect()),
        leakscope: EntryExtra {
            flow_id: flow.id,
            kind: flow.kind,
            phase,
            party,
            sdk,
            findings: FindingList(ctx.findings),
            tls: flow.tls.as_ref(),
            error: flow.error.as_ref(),
            client: flow.client_addr.to_string(),
            ws_messages_dropped: ws.map(|ws| ws.messages_dropped).filter(|&n| n > 0),
        },
    }
}

fn request(flow: &Flow) -> Request<'_> {
    let Some(req) = flow.request.as_ref() else {
        return Request {
            headers_size: -1,
            body_size: -1,
            ..Request::default()
        };
    };
    let cookies = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .flat_map(|h| parse_cookie_header(&h.value))
        .collect();
    let has_body = req.body.wire_size > 0 || !req.body.captured.is_empty();
    let mime = header(&req.headers, "content-type").unwrap_or("");
    Request {
        method: &req.method,
        url: &req.url,
        http_version: &req.http_version,
        cookies,
        headers: &req.headers,
        query_string: query_params(&req.url),
        post_data: has_body.then(|| post_data(&req.body, mime)),
        headers_size: -1,
        body_size: clamp_i64(req.body.wire_size),
    }
}

fn post_data<'a>(body: &'a BodyRecord, mime: &'a str) -> PostData<'a> {
    let (text, encoding) = BodyText::of(&body.captured, BodySlot::Request);
    let essence = mime.split(';').next().unwrap_or("").trim();
    let form = essence.eq_ignore_ascii_case("application/x-www-form-urlencoded");
    let params = match text {
        BodyText::Text(text) if form => Some(form_params(text)),
        _ => None,
    };
    PostData {
        mime_type: mime,
        text,
        params,
        comment: body_comment(body),
        encoding,
        truncated: body.truncated.then_some(true),
    }
}

fn response(flow: &Flow) -> Response<'_> {
    let Some(resp) = flow.response.as_ref() else {
        let content = Content {
            size: -1,
            mime_type: "x-unknown",
            ..Content::default()
        };
        let unknown = Response {
            content,
            headers_size: -1,
            body_size: -1,
            ..Response::default()
        };
        if flow
            .websocket
            .as_ref()
            .is_some_and(|ws| !ws.messages.is_empty())
        {
            // Messages were relayed, so the upgrade was accepted: 101 is a
            // fact even though its head was not recorded.
            return Response {
                status: 101,
                status_text: status_text(101),
                comment: Some("response head not recorded; status implied by the relayed messages"),
                ..unknown
            };
        }
        // No answer from upstream: the spec still requires a response
        // object; status 0 is what browsers export for the same case.
        return unknown;
    };
    let cookies = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|h| parse_set_cookie(&h.value))
        .collect();
    Response {
        status: resp.status,
        status_text: status_text(resp.status),
        http_version: &resp.http_version,
        cookies,
        headers: &resp.headers,
        content: content(
            &resp.body,
            header(&resp.headers, "content-type").unwrap_or("x-unknown"),
        ),
        redirect_url: header(&resp.headers, "location").unwrap_or(""),
        headers_size: -1,
        body_size: clamp_i64(resp.body.wire_size),
        comment: None,
    }
}

fn content<'a>(body: &'a BodyRecord, mime: &'a str) -> Content<'a> {
    let (text, encoding) = BodyText::of(&body.captured, BodySlot::Response);
    let compression = (!body.content_encoding.is_empty())
        .then(|| clamp_i64(body.decoded_size) - clamp_i64(body.wire_size));
    Content {
        size: clamp_i64(body.decoded_size),
        compression,
        mime_type: mime,
        text: (!body.captured.is_empty()).then_some(text),
        encoding,
        comment: body_comment(body),
        truncated: body.truncated.then_some(true),
        decode_error: body.decode_error.as_deref(),
    }
}

/// Says what a reader of `text` is not seeing, if anything.
fn body_comment(body: &BodyRecord) -> Option<String> {
    let mut notes = Vec::new();
    if body.truncated {
        notes.push(format!(
            "captured the first {} of {} decoded bytes (--body-limit)",
            body.captured.len(),
            body.decoded_size
        ));
    }
    if let Some(err) = &body.decode_error {
        notes.push(format!("decoding stopped: {err}"));
    }
    if !body.complete {
        notes.push("the body broke off before its end".to_owned());
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

fn ws_frame(msg: &WsMessage) -> WsFrame {
    let opcode = match msg.opcode {
        "text" => 1,
        "binary" => 2,
        "close" => 8,
        "ping" => 9,
        "pong" => 10,
        _ => 0,
    };
    let (data, encoding) = if opcode == 2 {
        // Chrome's format: binary frames are base64 without further note.
        (
            base64::engine::general_purpose::STANDARD.encode(&msg.data),
            None,
        )
    } else {
        text_or_base64(&msg.data)
    };
    WsFrame {
        kind: match msg.direction {
            Direction::Upstream => "send",
            Direction::Downstream => "receive",
        },
        time: msg.time.unix_timestamp() as f64 + f64::from(msg.time.nanosecond()) / 1e9,
        opcode,
        data,
        encoding,
        length: msg.truncated.then_some(msg.length),
    }
}

fn timings(flow: &Flow) -> Timings {
    let t = &flow.timing;
    let span = |from: Option<OffsetDateTime>, to: Option<OffsetDateTime>| match (from, to) {
        (Some(from), Some(to)) => ms(to - from),
        _ => 0.0,
    };
    Timings {
        blocked: -1.0,
        dns: -1.0,
        connect: -1.0,
        ssl: -1.0,
        // The client's upload: from the request's start until leakscope
        // had read all of it.
        send: span(Some(t.start), t.request_end),
        wait: span(t.request_end, t.response_start),
        receive: span(t.response_start, t.end),
    }
}

/// Whole duration; for a flow without an end, what the timings account for.
fn total_ms(flow: &Flow, timings: &Timings) -> f64 {
    match flow.timing.end {
        Some(end) => ms(end - flow.timing.start),
        None => timings.send + timings.wait + timings.receive,
    }
}

/// Milliseconds, microsecond precision, never negative (clocks can step).
fn ms(d: time::Duration) -> f64 {
    let ms = (d.as_seconds_f64() * 1_000_000.0).round() / 1000.0;
    if ms.is_finite() && ms > 0.0 { ms } else { 0.0 }
}

/// RFC 3339 in UTC with milliseconds, the form HAR tools expect.
pub fn har_time(t: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        // Only years outside 0..=9999 fail to format; none occur in traffic.
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

fn status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Text when the bytes are UTF-8, else base64 and the `"base64"` marker.
fn text_or_base64(bytes: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Some("base64"),
        ),
    }
}

/// Query parameters of `url`, decoded (`+` is a space, as in forms).
pub fn query_params(url: &str) -> Vec<NameValue> {
    let without_fragment = url.split('#').next().unwrap_or("");
    match without_fragment.split_once('?') {
        Some((_, query)) => form_params(query),
        None => Vec::new(),
    }
}

/// Pairs of an `application/x-www-form-urlencoded` text, decoded. A pair
/// without `=` is a name with an empty value.
pub fn form_params(text: &str) -> Vec<NameValue> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            NameValue::new(&form_decode(name), &form_decode(value))
        })
        .collect()
}

/// Percent-decodes `text`, `+` meaning space. A `%` not followed by two hex
/// digits stays as it is; decoded bytes that are not UTF-8 become U+FFFD.
pub fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: Option<&u8>) -> Option<u8> {
    b.and_then(|b| (*b as char).to_digit(16)).map(|d| d as u8)
}

/// Cookies of a request `Cookie` header (`a=1; b=2`).
pub fn parse_cookie_header(value: &str) -> Vec<Cookie> {
    value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or(("", pair));
            Cookie::new(name, value)
        })
        .collect()
}

/// One response `Set-Cookie` header. `None` for a header without a
/// `name=value` pair. An `Expires` that is not an HTTP date is kept in
/// `comment` rather than dropped.
pub fn parse_set_cookie(value: &str) -> Option<Cookie> {
    let mut parts = value.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let mut cookie = Cookie::new(name, value);
    for attr in parts {
        let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
        let val = val.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "path" => cookie.path = Some(val.to_owned()),
            "domain" => cookie.domain = Some(val.to_owned()),
            "httponly" => cookie.http_only = Some(true),
            "secure" => cookie.secure = Some(true),
            "expires" => match OffsetDateTime::parse(val, &Rfc2822) {
                Ok(t) => cookie.expires = Some(har_time(t)),
                Err(_) => cookie.comment = Some(format!("expires: {val}")),
            },
            _ => {}
        }
    }
    Some(cookie)
}
