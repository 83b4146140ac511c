//! Turns what the proxy relays into flow records, and lets inspectors watch.
//!
//! The proxy adapter reports each stage of a flow to a [`LiveFlow`]: the
//! request head, every body chunk in both directions, the response head,
//! WebSocket messages, failures. The live flow keeps the bounded record
//! ([`crate::flow::Flow`]) and hands each decoded chunk to the per-flow taps
//! that [`Inspector`]s opened for it. When the last holder of a live flow
//! lets go of it, the record is complete and is sent to the sinks as
//! [`SessionEvent::FlowDone`]: a flow can never be lost by a code path that
//! forgot to "finish" it.

use crate::flow::capture::{BodyCapture, BodyPiece, CaptureLimits};
use crate::flow::{
    Direction, Flow, FlowErrorKind, ResponseRecord, TlsFacts, WebSocketRecord, WsMessage,
};
use crate::session::{SessionEvent, SessionTx};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Watches flows while they stream (detectors implement this).
pub trait Inspector: Send + Sync + 'static {
    /// Called once per flow when its request head is known (for tunnels and
    /// refused handshakes: when the flow is recorded). Returns the tap that
    /// will see this flow's data, or `None` to ignore the flow.
    fn open(&self, flow: &Flow) -> Option<Box<dyn FlowTap>>;
}

/// One inspector's view of one flow. Hooks are called in stream order.
pub trait FlowTap: Send {
    /// A piece of a body after content decoding. Pieces arrive in order;
    /// their boundaries are wherever the network put them.
    fn body(&mut self, direction: Direction, decoded: &[u8]);

    /// The body does not start like its labelled content coding (see
    /// [`BodyPiece::NotEncoded`]): the `body` pieces that follow are the
    /// body as sent, from its first byte.
    fn body_not_encoded(&mut self, _direction: Direction) {}

    /// The body in `direction` ended (after its last `body` piece).
    fn body_end(&mut self, _direction: Direction) {}

    /// The response head arrived (`flow.response` is set, its body empty).
    fn response_head(&mut self, _flow: &Flow) {}

    /// One WebSocket message payload (whole, however long it was).
    fn ws_message(&mut self, _direction: Direction, _payload: &[u8]) {}

    /// The flow is complete; `flow` is the final record.
    fn end(&mut self, _flow: &Flow) {}
}

/// Shared settings of every live flow in a session.
#[derive(Clone)]
pub struct Pipeline {
    inspectors: Arc<Vec<Arc<dyn Inspector>>>,
    limits: CaptureLimits,
    tx: SessionTx,
    in_flight: Arc<InFlight>,
}

/// Counts flows being recorded, so shutdown can wait for them.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    /// Flows opened since the session started.
    opened: AtomicU64,
    idle: Notify,
}

impl Pipeline {
    pub fn new(inspectors: Vec<Arc<dyn Inspector>>, limits: CaptureLimits, tx: SessionTx) -> Self {
        Pipeline {
            inspectors: Arc::new(inspectors),
            limits,
            tx,
            in_flight: Arc::default(),
        }
    }

    /// Flows currently being recorded.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count.load(Ordering::SeqCst)
    }

    /// Flows opened since the session started: a burst that starts and
    /// ends between two looks at [`Self::in_flight`] still moves it.
    pub fn opened(&self) -> u64 {
        self.in_flight.opened.load(Ordering::SeqCst)
    }

    /// Waits until no flow is being recorded, or `limit` has passed.
    /// Returns the number still in flight.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> usize {
        let wait = async {
            loop {
                // Register interest before checking, so a flow that ends
                // between the check and the await still wakes us.
                let notified = self.in_flight.idle.notified();
                if self.in_flight() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.in_flight()
    }

    pub fn limits(&self) -> CaptureLimits {
        self.limits
    }

    /// Starts recording `flow`, whose request head (if any) is filled in.
    /// `request_encoding` is the request's Content-Encoding header.
    pub fn open(&self, flow: Flow, request_encoding: Option<&str>) -> LiveFlow {
        let taps = self
            .inspectors
            .iter()
            .filter_map(|inspector| inspector.open(&flow))
            .collect();
        let request_body = flow
            .request
            .as_ref()
            .map(|_| BodyCapture::new(request_encoding, self.limits));
        self.in_flight.count.fetch_add(1, Ordering::SeqCst);
        self.in_flight.opened.fetch_add(1, Ordering::SeqCst);
        LiveFlow {
            state: Arc::new(Mutex::new(LiveState {
                flow: Some(flow),
                request_body,
                response_body: None,
                ws_budget: self.limits.body_limit,
                limits: self.limits,
                taps,
                tx: self.tx.clone(),
                in_flight: self.in_flight.clone(),
            })),
        }
    }

    /// Records a flow that has no streaming stages (tunnel, refused TLS):
    /// inspectors see it open and end at once.
    pub fn record(&self, flow: Flow) {
        drop(self.open(flow, None));
    }
}

/// A flow being recorded. Clones share the same record; the record is sent
/// to the sinks when the last clone is dropped.
#[derive(Clone)]
pub struct LiveFlow {
    state: Arc<Mutex<LiveState>>,
}

struct LiveState {
    /// Always `Some` until the final drop takes it.
    flow: Option<Flow>,
    request_body: Option<BodyCapture>,
    response_body: Option<BodyCapture>,
    /// Bytes of WebSocket payload still allowed into the record.
    ws_budget: usize,
    limits: CaptureLimits,
    taps: Vec<Box<dyn FlowTap>>,
    tx: SessionTx,
    in_flight: Arc<InFlight>,
}

impl LiveState {
    fn flow(&mut self) -> &mut Flow {
        self.flow
            .as_mut()
            .expect("flow is present until the final drop")
    }
}

impl LiveFlow {
    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A panic in an inspector must not take every later stage of this
        // flow down with a poisoned lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Id of the flow being recorded.
    pub fn id(&self) -> u64 {
        self.lock().flow().id
    }

    /// Applies `edit` to the record (headers, TLS facts, errors...).
    pub fn edit(&self, edit: impl FnOnce(&mut Flow)) {
        edit(self.lock().flow());
    }

    /// A piece of the request body, as relayed.
    pub fn request_chunk(&self, wire: &[u8]) {
        self.body_chunk(Direction::Upstream, wire);
    }

    /// A piece of the response body, as relayed.
    pub fn response_chunk(&self, wire: &[u8]) {
        self.body_chunk(Direction::Downstream, wire);
    }

    fn body_chunk(&self, direction: Direction, wire: &[u8]) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let capture = match direction {
            Direction::Upstream => state.request_body.as_mut(),
            Direction::Downstream => state.response_body.as_mut(),
        };
        let Some(capture) = capture else { return };
        let taps = &mut state.taps;
        capture.push(wire, &mut |piece| tell(taps, direction, piece));
    }

    /// The body in `direction` reached its end.
    pub fn body_end(&self, direction: Direction) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let capture = match direction {
            Direction::Upstream => state.request_body.as_mut(),
            Direction::Downstream => state.response_body.as_mut(),
        };
        if let Some(capture) = capture {
            let taps = &mut state.taps;
            capture.finish(&mut |piece| tell(taps, direction, piece));
            for tap in taps.iter_mut() {
                tap.body_end(direction);
            }
        }
        if direction == Direction::Upstream {
            state.flow().timing.request_end = Some(OffsetDateTime::now_utc());
        }
    }

    /// The response head arrived; `response.body` is ignored (the body is
    /// recorded from the chunks that follow).
    pub fn response_head(&self, response: ResponseRecord, encoding: Option<&str>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.response_body = Some(BodyCapture::new(encoding, state.limits));
        let flow = state
            .flow
            .as_mut()
            .expect("flow is present until the final drop");
        flow.timing.response_start = Some(OffsetDateTime::now_utc());
        flow.response = Some(response);
        for tap in state.taps.iter_mut() {
            tap.response_head(flow);
        }
    }

    /// One WebSocket message relayed in `direction`.
    pub fn ws_message(&self, direction: Direction, opcode: &'static str, payload: &[u8]) {
        let mut guard = self.lock();
        let state = &mut *guard;
        for tap in state.taps.iter_mut() {
            tap.ws_message(direction, payload);
        }
        let keep = payload.len().min(state.ws_budget);
        state.ws_budget -= keep;
        let record = state
            .flow
            .as_mut()
            .expect("flow is present until the final drop")
            .websocket
            .get_or_insert_with(WebSocketRecord::default);
        if keep == 0 && !payload.is_empty() {
            record.messages_dropped += 1;
            return;
        }
        record.messages.push(WsMessage {
            time: OffsetDateTime::now_utc(),
            direction,
            opcode,
            length: payload.len(),
            data: bytes::Bytes::copy_from_slice(&payload[..keep]),
            truncated: keep < payload.len(),
        });
    }

    /// Records a failure (the first one wins).
    pub fn fail(&self, kind: FlowErrorKind, message: impl Into<String>) {
        self.lock().flow().set_error(kind, message);
    }

    /// Sets the TLS facts of the connection this flow travelled on.
    pub fn set_tls(&self, tls: Option<TlsFacts>) {
        self.lock().flow().tls = tls;
    }
}

/// Hands one piece of a capture's output to every tap.
fn tell(taps: &mut [Box<dyn FlowTap>], direction: Direction, piece: BodyPiece<'_>) {
    for tap in taps.iter_mut() {
        match piece {
            BodyPiece::Bytes(bytes) => tap.body(direction, bytes),
            BodyPiece::NotEncoded => tap.body_not_encoded(direction),
        }
    }
}

impl Drop for LiveState {
    fn drop(&mut self) {
        let Some(mut flow) = self.flow.take() else {
            return;
        };
        flow.timing.end.get_or_insert_with(OffsetDateTime::now_utc);
        // A body that broke off may still have bytes inside its decoder.
        let taps = &mut self.taps;
        if let Some(capture) = self.request_body.as_mut() {
            capture.abandon(&mut |piece| tell(taps, Direction::Upstream, piece));
        }
        if let Some(capture) = self.response_body.as_mut() {
            capture.abandon(&mut |piece| tell(taps, Direction::Downstream, piece));
        }
        if let (Some(capture), Some(request)) = (self.request_body.take(), flow.request.as_mut()) {
            request.body = capture.into_record();
        }
        if let (Some(capture), Some(response)) = (self.response_body.take(), flow.response.as_mut())
        {
            response.body = capture.into_record();
        }
        for tap in self.taps.iter_mut() {
            tap.end(&flow);
        }
        self.tx.send(SessionEvent::FlowDone(Arc::new(flow)));
        if self.in_flight.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.in_flight.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Sink, SinkHub};
    use std::io::Write;

    struct Flows(Arc<Mutex<Vec<Arc<Flow>>>>);

    impl Sink for Flows {
        fn name(&self) -> &'static str {
            "flows"
        }
        fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
            if let SessionEvent::FlowDone(flow) = event {
                self.0.lock().unwrap().push(flow.clone());
            }
            Ok(())
        }
    }

    /// A br request body that breaks off (no `body_end`) is recorded as far
    /// as it arrived, though the decoder held its last partial block.
    #[test]
    fn a_flow_that_ends_mid_body_records_what_its_decoder_held() {
        let body = b"imei=490154203237518&oaid=3f8a2c1be47d9a05&".repeat(20);
        let mut enc = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        enc.write_all(&body).unwrap();
        let wire = enc.into_inner();
        let flows = Arc::new(Mutex::new(Vec::new()));
        let hub = SinkHub::start(vec![Box::new(Flows(flows.clone()))]);
        let pipeline = Pipeline::new(Vec::new(), CaptureLimits::default(), hub.sender());
        let live = pipeline.open(Flow::posted(b""), Some("br"));
        live.request_chunk(&wire[..wire.len() - 1]);
        drop(live);
        hub.close();
        let flows = flows.lock().unwrap();
        let captured = &flows[0].request.as_ref().unwrap().body.captured;
        assert!(!captured.is_empty());
        assert!(body.starts_with(captured));
    }
}
