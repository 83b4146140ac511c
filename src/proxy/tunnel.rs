//! Counted pass-through tunnels for `--ignore-hosts`.
//!
//! When the CONNECT target already says "do not touch", leakscope relays the
//! bytes itself instead of letting hudsucker do it, so the flow record can
//! say how many bytes went each way.

use crate::flow::{Flow, FlowErrorKind, FlowKind, TunnelReason, TunnelRecord};
use crate::pipeline::Pipeline;
use hudsucker::Body;
use hudsucker::hyper::{Request, Response, StatusCode};
use hudsucker::hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Connects to the target first (so a dead target gets a 502, not a 200
/// followed by a closed stream), then relays after the client's upgrade.
pub(crate) async fn open(
    mut req: Request<Body>,
    mut flow: Flow,
    pipeline: Pipeline,
    connect_timeout: Duration,
    fixed_addr: Option<std::net::SocketAddr>,
) -> Response<Body> {
    let tunnel = flow
        .tunnel
        .clone()
        .expect("tunnel flows carry their target");
    let connect = async {
        match fixed_addr {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((tunnel.host.as_str(), tunnel.port)).await,
        }
    };
    let server = match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(server)) => server,
        Ok(Err(err)) => return refuse(flow, pipeline, err.to_string()),
        Err(_) => {
            return refuse(
                flow,
                pipeline,
                format!("no answer within {connect_timeout:?}"),
            );
        }
    };
    let _ = server.set_nodelay(true);
    let on_upgrade = hudsucker::hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => relay(TokioIo::new(upgraded), server, &mut flow).await,
            Err(err) => flow.set_error(FlowErrorKind::ClientAborted, err.to_string()),
        }
        flow.timing.end = Some(time::OffsetDateTime::now_utc());
        pipeline.record(flow);
    });
    Response::new(Body::empty())
}

fn refuse(mut flow: Flow, pipeline: Pipeline, why: String) -> Response<Body> {
    let target = flow
        .tunnel
        .as_ref()
        .map(|t| format!("{}:{}", t.host, t.port));
    let message = format!("cannot connect to {}: {why}", target.unwrap_or_default());
    flow.set_error(FlowErrorKind::UpstreamUnreachable, message.clone());
    flow.timing.end = Some(time::OffsetDateTime::now_utc());
    pipeline.record(flow);
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(Body::from(message))
        .expect("static response parts are valid")
}

async fn relay<C>(client: C, mut server: TcpStream, flow: &mut Flow)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let mut client = Counted {
        inner: client,
        read: up.clone(),
    };
    let result = {
        let mut server = Counted {
            inner: &mut server,
            read: down.clone(),
        };
        tokio::io::copy_bidirectional(&mut client, &mut server).await
    };
    if let Err(err) = result {
        flow.set_error(FlowErrorKind::Other, format!("tunnel broke off: {err}"));
    }
    if let Some(t) = flow.tunnel.as_mut() {
        t.bytes_up = Some(up.load(Ordering::Relaxed));
        t.bytes_down = Some(down.load(Ordering::Relaxed));
    }
}

/// A tunnel flow for `host:port`, before any byte has moved.
pub(crate) fn tunnel_flow(client_addr: std::net::SocketAddr, host: &str, port: u16) -> Flow {
    let mut flow = Flow::new(FlowKind::Tunnel, client_addr);
    flow.tunnel = Some(TunnelRecord {
        host: host.to_owned(),
        port,
        reason: TunnelReason::IgnoredHost,
        bytes_up: Some(0),
        bytes_down: Some(0),
        first_bytes_hex: None,
    });
    flow
}

/// Counts the bytes read through a stream, whether or not the copy ends
/// cleanly (copy_bidirectional only reports totals on success).
struct Counted<T> {
    inner: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
