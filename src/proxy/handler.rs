//! The hudsucker handlers: the only code that sees hyper requests.
//!
//! hudsucker clones the HTTP handler per request/response pair, so a
//! [`FlowHandler`] instance *is* the per-flow state: `handle_request` opens
//! the [`LiveFlow`], `handle_response`/`handle_error` finish its head, and
//! the body taps carry it until the last byte. For a CONNECT, the instance
//! that saw the CONNECT is the one whose clones serve the decrypted requests,
//! so what it learns from the TLS ClientHello reaches every inner flow.

use super::access::Verdict;
use super::watch::{self, ConnectWatch, Watched, WebSocketWatch};
use super::{Shared, body_tap, cert_page, tunnel};
use crate::flow::{
    Direction, Flow, FlowErrorKind, FlowKind, Header, RequestRecord, ResponseRecord, TlsFacts,
    TlsMode,
};
use crate::pipeline::LiveFlow;
use futures::{Sink, SinkExt, Stream, StreamExt};
use hudsucker::hyper::header::{self, HeaderMap, HeaderValue};
use hudsucker::hyper::{Method, Request, Response, StatusCode, Uri};
use hudsucker::tokio_tungstenite::tungstenite::{self, Message};
use hudsucker::{
    Body, HttpContext, HttpHandler, RequestOrResponse, WebSocketContext, WebSocketHandler,
};
use std::sync::{Arc, Mutex};

/// Per-flow HTTP handler.
#[derive(Clone)]
pub(crate) struct FlowHandler {
    shared: Arc<Shared>,
    /// The CONNECT this request arrived through, if any.
    connect: Option<Arc<ConnectWatch>>,
    /// The flow this instance is recording.
    live: Option<LiveFlow>,
}

impl FlowHandler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        FlowHandler {
            shared,
            connect: None,
            live: None,
        }
    }

    /// Access control for requests arriving on a client connection.
    fn refusal(&self, ctx: &HttpContext, req: &Request<Body>) -> Option<Response<Body>> {
        let auth = req
            .headers()
            .get(header::PROXY_AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        match self.shared.access.check(ctx.client_addr.ip(), auth) {
            Verdict::Allowed => None,
            Verdict::AddressNotAllowed => {
                tracing::warn!(
                    "refused {}: address not in --allow ({} {})",
                    ctx.client_addr,
                    req.method(),
                    req.uri().host().unwrap_or("")
                );
                Some(text_response(
                    StatusCode::FORBIDDEN,
                    "leakscope: this address may not use the proxy\n",
                ))
            }
            Verdict::AuthRequired => {
                tracing::warn!(
                    "refused {}: missing or wrong proxy credentials",
                    ctx.client_addr
                );
                let mut res = text_response(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "leakscope: proxy credentials required\n",
                );
                res.headers_mut().insert(
                    header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"leakscope\""),
                );
                Some(res)
            }
        }
    }

    async fn connect(&mut self, ctx: &HttpContext, req: Request<Body>) -> RequestOrResponse {
        let Some(authority) = req.uri().authority().cloned() else {
            return text_response(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n").into();
        };
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        let port = authority.port_u16().unwrap_or(443);
        if let Some(refusal) = self.own_target(&host, port) {
            return refusal.into();
        }
        if self.shared.ignores(&host) {
            let flow = tunnel::tunnel_flow(ctx.client_addr, &host, port);
            let pipeline = self.shared.pipeline.clone();
            let fixed = self.shared.resolve.get(&host.to_ascii_lowercase()).copied();
            return tunnel::open(req, flow, pipeline, self.shared.connect_timeout, fixed)
                .await
                .into();
        }
        let watch = Arc::new(ConnectWatch {
            flow: Mutex::new(Flow::new(FlowKind::Tunnel, ctx.client_addr)),
            host,
            port,
            pipeline: self.shared.pipeline.clone(),
            tunnel: Mutex::new(None),
        });
        watch::watch(
            (ctx.client_addr, req.uri().to_string()),
            Watched::Connect(watch.clone()),
        );
        self.connect = Some(watch);
        req.into()
    }

    fn tls_facts(&self) -> Option<TlsFacts> {
        let connect = self.connect.as_ref()?;
        connect
            .flow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tls
            .clone()
    }

    fn open_flow(&mut self, ctx: &HttpContext, req: Request<Body>) -> Request<Body> {
        let websocket = is_websocket_upgrade(req.headers());
        let kind = if websocket {
            FlowKind::WebSocket
        } else {
            FlowKind::Http
        };
        let mut flow = Flow::new(kind, ctx.client_addr);
        flow.request = Some(request_record(&req));
        flow.tls = self.tls_facts();
        let encoding = header_str(req.headers(), header::CONTENT_ENCODING);
        let live = self.shared.pipeline.open(flow, encoding.as_deref());
        if websocket && req.headers().contains_key(header::SEC_WEBSOCKET_KEY) {
            let key = (ctx.client_addr, req.uri().to_string());
            watch::watch(
                key,
                Watched::WebSocket(WebSocketWatch {
                    live: live.clone(),
                    waiting: 2,
                }),
            );
        }
        let (parts, body) = req.into_parts();
        let body = body_tap::tap(body, live.clone(), Direction::Upstream);
        self.live = Some(live);
        Request::from_parts(parts, body)
    }
}

impl HttpHandler for FlowHandler {
    async fn handle_request(
        &mut self,
        ctx: &HttpContext,
        mut req: Request<Body>,
    ) -> RequestOrResponse {
        if self.connect.is_none()
            && let Some(refused) = self.refusal(ctx, &req)
        {
            return refused.into();
        }
        // Credentials for the proxy are never forwarded, nor recorded.
        req.headers_mut().remove(header::PROXY_AUTHORIZATION);
        req.headers_mut().remove("proxy-connection");
        if req.method() == Method::CONNECT {
            return self.connect(ctx, req).await;
        }
        if cert_page::is_cert_page(req.uri(), req.headers()) {
            return cert_page::serve(&self.shared.cert_page, req.uri().path()).into();
        }
        let (host, port) = host_and_port(req.uri(), req.headers());
        if host.is_empty() {
            // Neither an absolute URI nor a Host header: nowhere to relay
            // to, and the client is at fault: 400, not an upstream 502.
            return text_response(
                StatusCode::BAD_REQUEST,
                "leakscope: the request names no host (absolute URI or Host header)\n",
            )
            .into();
        }
        if let Some(refusal) = self.own_target(&host, port) {
            return refusal.into();
        }
        self.open_flow(ctx, req).into()
    }

    async fn handle_response(&mut self, _ctx: &HttpContext, res: Response<Body>) -> Response<Body> {
        let Some(live) = self.live.take() else {
            return res;
        };
        let encoding = header_str(res.headers(), header::CONTENT_ENCODING);
        live.response_head(response_record(&res), encoding.as_deref());
        let (parts, body) = res.into_parts();
        Response::from_parts(parts, body_tap::tap(body, live, Direction::Downstream))
    }

    async fn handle_error(
        &mut self,
        _ctx: &HttpContext,
        err: hudsucker::hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        let (kind, message) = classify_upstream_error(&err);
        let text = format!("leakscope: {message}\n");
        let res = text_response(StatusCode::BAD_GATEWAY, &text);
        if let Some(live) = self.live.take() {
            live.fail(kind, message);
            live.response_head(response_record(&res), None);
            live.response_chunk(text.as_bytes());
            live.body_end(Direction::Downstream);
        }
        res
    }

    async fn should_intercept_tls(
        &mut self,
        _ctx: &HttpContext,
        hello: hudsucker::rustls::server::ClientHello<'_>,
    ) -> bool {
        let Some(connect) = &self.connect else {
            return true;
        };
        let sni = hello.server_name().map(str::to_owned);
        let alpn_offered = hello
            .alpn()
            .map(|protocols| {
                protocols
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let passthrough = sni.as_deref().is_some_and(|sni| self.shared.ignores(sni));
        let mode = if passthrough {
            TlsMode::PassedThrough
        } else {
            TlsMode::Intercepted
        };
        connect.flow.lock().unwrap_or_else(|p| p.into_inner()).tls = Some(TlsFacts {
            mode,
            sni,
            alpn_offered,
            alert: None,
        });
        if passthrough {
            *connect.tunnel.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(crate::flow::TunnelRecord {
                    host: connect.host.clone(),
                    port: connect.port,
                    reason: crate::flow::TunnelReason::IgnoredHost,
                    bytes_up: None,
                    bytes_down: None,
                    first_bytes_hex: None,
                });
        }
        !passthrough
    }
}

/// Records WebSocket messages into the flow of their upgrade request.
#[derive(Clone, Default)]
pub(crate) struct WsRecorder;

impl WebSocketHandler for WsRecorder {
    async fn handle_websocket(
        self,
        ctx: WebSocketContext,
        mut stream: impl Stream<Item = Result<Message, tungstenite::Error>> + Unpin + Send + 'static,
        mut sink: impl Sink<Message, Error = tungstenite::Error> + Unpin + Send + 'static,
    ) {
        let (direction, client, uri) = match &ctx {
            WebSocketContext::ClientToServer { src, dst, .. } => (Direction::Upstream, *src, dst),
            WebSocketContext::ServerToClient { src, dst, .. } => (Direction::Downstream, *dst, src),
        };
        let live = watch::take_websocket(&(client, http_form(uri)));
        while let Some(message) = stream.next().await {
            match message {
                Ok(message) => {
                    if let Some(live) = &live {
                        let (opcode, payload) = ws_payload(&message);
                        live.ws_message(direction, opcode, payload);
                    }
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                Err(err) => {
                    if let Some(live) = &live {
                        live.fail(FlowErrorKind::BodyInterrupted, format!("websocket: {err}"));
                    }
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    }
}

/// Same test hudsucker applies before it upgrades: `Connection` lists
/// `upgrade` and `Upgrade` lists `websocket`.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let lists = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    lists(header::CONNECTION, "upgrade") && lists(header::UPGRADE, "websocket")
}

fn ws_payload(message: &Message) -> (&'static str, &[u8]) {
    match message {
        Message::Text(text) => ("text", text.as_bytes()),
        Message::Binary(data) => ("binary", data),
        Message::Ping(data) => ("ping", data),
        Message::Pong(data) => ("pong", data),
        Message::Close(frame) => (
            "close",
            frame.as_ref().map_or(&[][..], |f| f.reason.as_bytes()),
        ),
        Message::Frame(frame) => ("frame", frame.payload()),
    }
}

/// hudsucker rewrites `http`/`https` to `ws`/`wss` for the upstream
/// WebSocket; undo it to find the upgrade request's key.
fn http_form(uri: &Uri) -> String {
    let text = uri.to_string();
    if let Some(rest) = text.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = text.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        text
    }
}

fn request_record(req: &Request<Body>) -> RequestRecord {
    let (host, port) = host_and_port(req.uri(), req.headers());
    RequestRecord {
        method: req.method().to_string(),
        url: absolute_url(req.uri(), &host),
        host,
        port,
        http_version: format!("{:?}", req.version()),
        headers: headers(req.headers()),
        body: Default::default(),
    }
}

fn response_record(res: &Response<Body>) -> ResponseRecord {
    ResponseRecord {
        status: res.status().as_u16(),
        http_version: format!("{:?}", res.version()),
        headers: headers(res.headers()),
        body: Default::default(),
    }
}

/// Host and port a request is for: from the URI, else the Host header.
fn host_and_port(uri: &Uri, headers: &HeaderMap) -> (String, u16) {
    let https = uri.scheme_str() == Some("https");
    let default_port = if https { 443 } else { 80 };
    if let Some(authority) = uri.authority() {
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        return (host, authority.port_u16().unwrap_or(default_port));
    }
    let host_header = header_str(headers, header::HOST).unwrap_or_default();
    match host_header.parse::<http::uri::Authority>() {
        Ok(a) => (
            a.host().trim_matches(['[', ']']).to_owned(),
            a.port_u16().unwrap_or(default_port),
        ),
        Err(_) => (host_header, default_port),
    }
}

fn absolute_url(uri: &Uri, host: &str) -> String {
    if uri.scheme().is_some() {
        return uri.to_string();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("http://{host}{path}")
}

fn headers(map: &HeaderMap) -> Vec<Header> {
    map.iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect()
}

fn header_str(map: &HeaderMap, name: header::HeaderName) -> Option<String> {
    map.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn text_response(status: StatusCode, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text.to_owned()))
        .expect("static response parts are valid")
}

impl FlowHandler {
    /// The answer for a request aimed at leakscope itself: the proxy (a
    /// loop) or the control API (the app must not switch phases).
    fn own_target(&self, host: &str, port: u16) -> Option<Response<Body>> {
        if self.shared.is_own_address(host, port) {
            return Some(text_response(
                StatusCode::LOOP_DETECTED,
                "leakscope: request addressed to the proxy itself; refusing to loop\n",
            ));
        }
        self.shared.is_own_service(host, port).then(|| {
            text_response(
                StatusCode::FORBIDDEN,
                "leakscope: the control API cannot be reached through the proxy\n",
            )
        })
    }
}

/// Names the upstream failure the way a tester needs to read it.
fn classify_upstream_error(
    err: &hudsucker::hyper_util::client::legacy::Error,
) -> (FlowErrorKind, String) {
    let message = super::error_chain(err);
    let mut certificate = false;
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<hudsucker::rustls::Error>() {
            certificate |= matches!(tls, hudsucker::rustls::Error::InvalidCertificate(_));
        }
        source = cause.source();
    }
    certificate |= message.contains("invalid peer certificate");
    let kind = if certificate {
        FlowErrorKind::UpstreamCertificate
    } else if super::idle::caused_by_timeout(err) {
        FlowErrorKind::Timeout
    } else if err.is_connect() {
        FlowErrorKind::UpstreamUnreachable
    } else {
        FlowErrorKind::Other
    };
    (kind, message)
}
