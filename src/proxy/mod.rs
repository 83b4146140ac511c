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
mod tunnel;
mod upstream;
pub mod watch;

pub use access::{AccessPolicy, ProxyAuth};
pub use watch::watched_connections;

use crate::ca::CertAuthority;
use crate::pipeline::Pipeline;
use handler::{FlowHandler, WsRecorder};
use hudsucker::Proxy;
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
    /// Upper bound on connecting to an upstream (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// Per-host leaf certificates kept in memory.
    pub leaf_cache: usize,
    /// Fixed upstream addresses by host name (`--resolve HOST=ADDR`), for
    /// HTTP(S) flows and pass-through tunnels.
    pub resolve: HashMap<String, SocketAddr>,
}

impl ProxyConfig {
    /// Defaults for a proxy on `listen`: open to whoever reaches the socket,
    /// Mozilla roots upstream, 10 s connect timeout.
    pub fn new(listen: SocketAddr) -> ProxyConfig {
        ProxyConfig {
            listen,
            access: AccessPolicy::default(),
            ignore_hosts: None,
            upstream_ca: Vec::new(),
            insecure_upstream: false,
            connect_timeout: Duration::from_secs(10),
            leaf_cache: 1000,
            resolve: HashMap::new(),
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
        if port != self.listen.port() {
            return false;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                ip == self.listen.ip()
                    || (ip.is_loopback() && self.listen.ip().is_loopback())
                    || self.listen.ip().is_unspecified()
            }
            Err(_) => host.eq_ignore_ascii_case("localhost"),
        }
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
    let listener = bind(config.listen)?;
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
        connect_timeout: config.connect_timeout,
        resolve: config.resolve.clone(),
        listen: addr,
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = Proxy::builder()
        .with_listener(listener)
        .with_ca(ca.leaf_issuer(config.leaf_cache)?)
        .with_http_connector(upstream::connector(
            tls.clone(),
            config.connect_timeout,
            &config.resolve,
        ))
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

/// Binds with TCP_NODELAY on the listening socket: Linux copies it to every
/// accepted socket, and without it large HTTPS responses stall ~40 ms on
/// Nagle + delayed ACK.
fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proxy relies on accepted sockets inheriting TCP_NODELAY from the
    /// listening socket (hudsucker accepts them; we never see them).
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).expect("bind on loopback");
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
