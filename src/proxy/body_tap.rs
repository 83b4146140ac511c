//! Streams a body through unchanged while the flow record watches it.
//!
//! Each data frame is handed to the [`LiveFlow`] as it passes and then
//! forwarded at once: nothing waits for the whole body. The end of the
//! stream, a stream error, and a stream dropped half-way (the peer went
//! away) are each recorded.

use crate::flow::{Direction, FlowErrorKind};
use crate::pipeline::LiveFlow;
use bytes::Bytes;
use futures::Stream;
use hudsucker::Body;
use hudsucker::hyper::body::Body as HttpBody;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Wraps `body` so that `live` sees every chunk travelling in `direction`.
/// An empty body is not wrapped (wrapping would hide its known length of
/// zero from hyper); its end is recorded immediately.
pub fn tap(body: Body, live: LiveFlow, direction: Direction) -> Body {
    if body.is_end_stream() {
        live.body_end(direction);
        return body;
    }
    Body::from_stream(TappedBody {
        inner: body,
        live,
        direction,
        ended: false,
    })
}

struct TappedBody {
    inner: Body,
    live: LiveFlow,
    direction: Direction,
    ended: bool,
}

impl Stream for TappedBody {
    type Item = Result<Bytes, hudsucker::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            };
            match frame {
                None => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Some(Err(err)) => {
                    self.ended = true;
                    let kind = if super::idle::caused_by_timeout(&err) {
                        FlowErrorKind::Timeout
                    } else {
                        FlowErrorKind::BodyInterrupted
                    };
                    self.live.fail(
                        kind,
                        format!(
                            "{} body: {}",
                            side(self.direction),
                            super::error_chain(&err)
                        ),
                    );
                    return Poll::Ready(Some(Err(err)));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        self.live_chunk(&data);
                        // hyper stops polling a body whose announced length
                        // has been reached, so its end must be noticed here
                        // rather than from a final `None`.
                        if self.inner.is_end_stream() {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                    // Trailers cannot be forwarded through a data stream;
                    // skip them rather than fail the body.
                    Err(_trailers) => continue,
                },
            }
        }
    }
}

impl TappedBody {
    fn finish(&mut self) {
        if !self.ended {
            self.ended = true;
            self.live.body_end(self.direction);
        }
    }

    fn live_chunk(&self, data: &Bytes) {
        match self.direction {
            Direction::Upstream => self.live.request_chunk(data),
            Direction::Downstream => self.live.response_chunk(data),
        }
    }
}

impl Drop for TappedBody {
    fn drop(&mut self) {
        if !self.ended {
            let kind = match self.direction {
                Direction::Upstream => FlowErrorKind::BodyInterrupted,
                Direction::Downstream => FlowErrorKind::ClientAborted,
            };
            self.live.fail(
                kind,
                format!("{} body was abandoned before its end", side(self.direction)),
            );
        }
    }
}

fn side(direction: Direction) -> &'static str {
    match direction {
        Direction::Upstream => "request",
        Direction::Downstream => "response",
    }
}
