//! The intercepting proxy: a thin adapter over hudsucker.
//!
//! This module owns everything protocol-shaped (listening, TLS, upstream
//! connections, access control) and hands what it relays to the
//! [`Pipeline`] as flow events. Nothing outside `proxy` touches hyper or
//! hudsucker types.

mod access;
mod body_tap;
mod cert_page;
mod handler;
mod idle;
mod tunnel;
mod upstream;
pub mod watch;

pub use access::{AccessPolicy, ProxyAuth};
pub use watch::watched_connections;

use crate::ca::CertAuthority;
use crate::pipeline::Pipeline;
use handler::{FlowHandler, WsRecorder};
use hudsucker::Proxy;
use hudsucker::hyper_util::rt::{TokioExecutor, TokioTimer};
use hudsucker::hyper_util::server::conn::auto::Builder as ServerBuilder;
use regex::Regex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Everything `run` needs to start the proxy, already validated.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Address to listen on (`--listen`).
    pub listen: SocketAddr,
    pub access: AccessPolicy,
    /// Hosts relayed without decryption (`--ignore-hosts`).
    pub ignore_hosts: Option<Regex>,
    /// Extra PEM files of roots trusted for upstream TLS (`--upstream-ca`).
    pub upstream_ca: Vec<PathBuf>,
    /// Skip upstream certificate checks (`--insecure-upstream`).
    pub insecure_upstream: bool,
    pub timeouts: Timeouts,
    /// Per-host leaf certificates kept in memory.
    pub leaf_cache: usize,
    /// Fixed upstream addresses by host name (`--resolve HOST=ADDR`), for
    /// HTTP(S) flows and pass-through tunnels.
    pub resolve: HashMap<String, SocketAddr>,
    /// leakscope's own services (the control API), refused to anything
    /// arriving through the proxy.
    pub services: Vec<SocketAddr>,
}

impl ProxyConfig {
    /// Defaults for a proxy on `listen`: open to whoever reaches the socket,
    /// Mozilla roots upstream, [`Timeouts::default`].
    pub fn new(listen: SocketAddr) -> ProxyConfig {
        ProxyConfig {
            listen,
            access: AccessPolicy::default(),
            ignore_hosts: None,
            upstream_ca: Vec::new(),
            insecure_upstream: false,
            timeouts: Timeouts::default(),
            leaf_cache: 1000,
            resolve: HashMap::new(),
            services: Vec::new(),
        }
    }
}

/// How long the proxy waits on a peer before giving up on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Connecting to an upstream (`--connect-timeout`, default 10 s).
    pub connect: Duration,
    /// A client sending a request head, counted from when the proxy starts
    /// waiting for it — so it also closes idle keep-alive connections
    /// (`--header-timeout`, default 30 s, hyper's own default).
    pub header: Duration,
    /// No byte moving on a connection the proxy is waiting on: an upstream
    /// that never answers or stalls mid-body, a client that stops reading
    /// (`--idle-timeout`, default 120 s: long enough for the long-poll
    /// requests push SDKs make, short enough to free a dead peer's
    /// resources within minutes).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            header: Duration::from_secs(30),
            idle: Duration::from_secs(120),
        }
    }
}

/// State every handler clone shares.
pub(crate) struct Shared {
    pub pipeline: Pipeline,
    pub access: AccessPolicy,
    pub ignore_hosts: Option<Regex>,
    pub cert_page: cert_page::CertPage,
    pub connect_timeout: Duration,
    pub resolve: HashMap<String, SocketAddr>,
    /// The address actually bound (port resolved).
    pub listen: SocketAddr,
    pub services: Vec<SocketAddr>,
}

impl Shared {
    pub fn ignores(&self, host: &str) -> bool {
        self.ignore_hosts
            .as_ref()
            .is_some_and(|re| re.is_match(host))
    }

    /// True when `host:port` is this proxy's own listening socket: relaying
    /// it would loop forever.
    pub fn is_own_address(&self, host: &str, port: u16) -> bool {
        addresses(host, port, self.listen)
    }

    /// True when `host:port` is one of leakscope's own services (the
    /// control API): traffic through the proxy — the app under test —
    /// must not switch phases or read findings.
    pub fn is_own_service(&self, host: &str, port: u16) -> bool {
        self.services
            .iter()
            .any(|addr| addresses(host, port, *addr))
    }
}

/// Whether `host:port`, as a client names it, reaches the socket bound at
/// `bound` on this machine.
fn addresses(host: &str, port: u16, bound: SocketAddr) -> bool {
    if port != bound.port() {
        return false;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            ip == bound.ip()
                || (ip.is_loopback() && bound.ip().is_loopback())
                || bound.ip().is_unspecified()
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {addr}: {source} (is another proxy already using that port? pick another with --listen)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream TLS setup: {0}")]
    Upstream(String),
    #[error("certificate authority: {0}")]
    Ca(#[from] crate::ca::CaError),
    #[error("building the proxy: {0}")]
    Build(String),
}

/// A proxy that is accepting connections.
pub struct RunningProxy {
    addr: SocketAddr,
    pipeline: Pipeline,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningProxy {
    /// The address the proxy listens on (with the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets flows in flight finish for up to `grace`, and
    /// returns how many were still unfinished. Those are recorded as aborted
    /// when their tasks are dropped with the runtime.
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = tokio::time::Instant::now() + grace;
        // Connections hudsucker tracks (plain HTTP) end here; CONNECT tasks
        // are its own spawns, so flows are the measure of what is left.
        if tokio::time::timeout_at(deadline, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.pipeline.wait_idle(left).await
    }
}

/// Binds `config.listen` and starts the proxy.
pub async fn start(
    config: &ProxyConfig,
    ca: &CertAuthority,
    pipeline: Pipeline,
) -> Result<RunningProxy, StartError> {
    crate::logging::ensure();
    let listener = bind(config.listen, config.timeouts.idle)?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let tls = upstream::client_tls(&config.upstream_ca, config.insecure_upstream)
        .map_err(StartError::Upstream)?;
    let shared = Arc::new(Shared {
        pipeline: pipeline.clone(),
        access: config.access.clone(),
        ignore_hosts: config.ignore_hosts.clone(),
        cert_page: cert_page::CertPage::new(ca),
        connect_timeout: config.timeouts.connect,
        resolve: config.resolve.clone(),
        listen: addr,
        services: config.services.clone(),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = Proxy::builder()
        .with_listener(listener)
        .with_ca(ca.leaf_issuer(config.leaf_cache)?)
        .with_http_connector(upstream::connector(
            tls.clone(),
            &config.timeouts,
            &config.resolve,
        ))
        .with_server(server(&config.timeouts))
        .with_http_handler(FlowHandler::new(shared))
        .with_websocket_handler(WsRecorder)
        .with_websocket_connector(upstream::websocket_connector(tls))
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .build()
        .map_err(|e| StartError::Build(e.to_string()))?;
    let task = tokio::spawn(async move {
        if let Err(err) = proxy.start().await {
            tracing::error!("proxy stopped: {err}");
        }
    });
    Ok(RunningProxy {
        addr,
        pipeline,
        stop: Some(stop),
        task,
    })
}

/// The error and its causes, which carry the useful part ("upstream idle
/// for 5s", "invalid peer certificate") under hyper's generic wording.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

/// The connection server hudsucker uses for clients (and again inside each
/// intercepted TLS tunnel): hudsucker's header settings plus a timer, which
/// hyper needs for the header-read timeout to take effect at all.
fn server(timeouts: &Timeouts) -> ServerBuilder<TokioExecutor> {
    let mut builder = ServerBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .title_case_headers(true)
        .preserve_header_case(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Binds with TCP_NODELAY on the listening socket: Linux copies it to every
/// accepted socket, and without it large HTTPS responses stall ~40 ms on
/// Nagle + delayed ACK. TCP_USER_TIMEOUT (also inherited) makes the kernel
/// drop a client that stops reading — its window stays at zero — or that
/// vanished, once unacknowledged data is older than the idle timeout;
/// hudsucker owns the accepted sockets, so no timer of ours could.
fn bind(addr: SocketAddr, idle: Duration) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_nodelay(true).map_err(err)?;
    set_user_timeout(&socket, idle).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

fn set_user_timeout(socket: &TcpSocket, timeout: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let millis = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: a valid socket descriptor and a pointer to a c_uint that
    // lives for the call, as setsockopt(TCP_USER_TIMEOUT) requires.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&raw const millis).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proxy relies on accepted sockets inheriting TCP_NODELAY from the
    /// listening socket (hudsucker accepts them; we never see them).
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay() {
        let listener =
            bind("127.0.0.1:0".parse().unwrap(), Duration::from_secs(1)).expect("bind on loopback");
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "accepted socket lacks TCP_NODELAY"
        );
        drop(client);
    }
}
