//! Idle timeouts for upstream connections.
//!
//! hudsucker awaits the upstream response itself, so the proxy cannot put a
//! timer around "waiting for the server". Instead every upstream socket is
//! wrapped in [`IdleIo`]: when neither a read nor a write has made progress
//! for the idle timeout while hyper is waiting on the socket, the next poll
//! fails with `TimedOut`. That one rule covers an upstream that accepts and
//! never answers, one that stalls mid-body, and one that stops reading an
//! upload; the flow then ends with the error in its record. A pooled
//! keep-alive connection that sits idle is closed by the same rule, which is
//! harmless: the pool opens a new one.
//!
//! The timer is re-armed lazily: progress only stores `Instant::now()`, and
//! the sleep is pushed forward when it fires early, so the data path pays
//! for a clock read, not a timer-wheel update, per read.

use hudsucker::hyper::Uri;
use hudsucker::hyper::rt::{Read, ReadBufCursor, Write};
use hudsucker::hyper_util::client::legacy::connect::{Connected, Connection};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// True when `err` or any error it was caused by is an I/O timeout, such as
/// the one [`IdleIo`] raises.
pub(crate) fn caused_by_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Wraps a connector so that every connection it makes is an [`IdleIo`].
#[derive(Clone)]
pub(crate) struct IdleConnector<C> {
    inner: C,
    idle: Duration,
}

impl<C> IdleConnector<C> {
    pub fn new(inner: C, idle: Duration) -> IdleConnector<C> {
        IdleConnector { inner, idle }
    }
}

impl<C> tower_service::Service<Uri> for IdleConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = IdleIo<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let idle = self.idle;
        Box::pin(async move { Ok(IdleIo::new(connecting.await?, idle)) })
    }
}

/// A connection that fails with `TimedOut` once it has been idle — no byte
/// read or written — for longer than its timeout while being polled.
pub(crate) struct IdleIo<T> {
    inner: T,
    idle: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    fn new(inner: T, idle: Duration) -> IdleIo<T> {
        let now = Instant::now();
        IdleIo {
            inner,
            idle,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// Called when the inner socket is not ready: registers the timer and
    /// reports whether the connection has now been idle too long.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let deadline = self.last_progress + self.idle;
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.last_progress + self.idle <= Instant::now() {
                return true;
            }
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "upstream idle for {}s (no data either way; --idle-timeout)",
                self.idle.as_secs_f64()
            ),
        )
    }

    /// Turns a pending inner poll into a timeout error once idle too long,
    /// and records progress when `moved` says bytes went through.
    ///
    /// A flush that returns at once, or a zero-length write, moved nothing:
    /// counting it as progress would let hyper's connection task, which
    /// flushes on every wake-up, push the deadline forward each time the
    /// timer wakes it, so a silent peer would never time out.
    fn settle<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
        moved: impl FnOnce(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(Ok(value)) => {
                if moved(&value) {
                    self.last_progress = Instant::now();
                }
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(self.timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Read + Unpin> Read for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A ready read is data or the end of the stream: either is news.
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.settle(cx, polled, |()| true)
    }
}

impl<T: Write + Unpin> Write for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.settle(cx, polled, |&n| n > 0)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.settle(cx, polled, |()| false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.settle(cx, polled, |&n| n > 0)
    }
}

impl<T: Connection> Connection for IdleIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hudsucker::hyper_util::rt::TokioIo;
    use std::future::poll_fn;
    use std::mem::MaybeUninit;
    use tokio::io::AsyncWriteExt;

    async fn read_some(io: &mut IdleIo<TokioIo<tokio::io::DuplexStream>>) -> io::Result<usize> {
        let mut storage = [MaybeUninit::<u8>::uninit(); 64];
        let mut buf = hudsucker::hyper::rt::ReadBuf::uninit(&mut storage);
        poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, buf.unfilled())).await?;
        Ok(buf.filled().len())
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_after_the_idle_period() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = IdleIo::new(TokioIo::new(ours), Duration::from_secs(5));
        let started = Instant::now();
        let err = read_some(&mut io)
            .await
            .expect_err("a silent peer must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_pushes_the_deadline_forward() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = IdleIo::new(TokioIo::new(ours), Duration::from_secs(5));
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                theirs.write_all(b"x").await.unwrap();
            }
            theirs
        });
        for _ in 0..3 {
            assert_eq!(read_some(&mut io).await.unwrap(), 1);
        }
        // 12 s have passed with data every 4 s: never idle for 5 s.
        assert_eq!(started.elapsed(), Duration::from_secs(12));
        let _theirs = writer.await.unwrap();
        let err = read_some(&mut io)
            .await
            .expect_err("silence after the data");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(17));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_with_nothing_to_send_is_not_progress() {
        // hyper's connection task reads, then flushes, on every wake-up. If
        // the flush counted, the deadline would move with each wake-up.
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = IdleIo::new(TokioIo::new(ours), Duration::from_secs(5));
        let started = Instant::now();
        tokio::time::advance(Duration::from_secs(3)).await;
        poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
            .await
            .expect("an empty flush succeeds at once");
        let err = read_some(&mut io)
            .await
            .expect_err("a silent peer must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
