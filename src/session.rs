//! Session events and the sinks that consume them.
//!
//! Everything a session produces travels as a [`SessionEvent`] over one
//! channel to a dedicated thread that owns the sinks (terminal log, files).
//! Sinks do blocking I/O on that thread, so a slow disk or terminal never
//! stalls the proxy's async workers, and sinks never call back into the
//! proxy. A sink that fails is reported and the others carry on.
//!
//! The queue is bounded by what it holds: completed flows carry their
//! captured bodies, and at most [`SinkHub::start_filtered`]'s
//! `queue_limit` bytes of them wait at once. A sender that would go past
//! it waits until the sink thread has caught up (back-pressure on the
//! proxy rather than memory that grows with the backlog). Nothing is
//! dropped to stay under the limit.

use crate::consent::PhaseChange;
use crate::detect::finding::{Finding, FlowLabels};
use crate::flow::Flow;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// Default for the captured bytes that may wait for the sink thread
/// (`--queue-limit`): 64 full-size bodies at the default body limit.
pub const DEFAULT_QUEUE_LIMIT: u64 = 64 << 20;

/// Something that happened in the session, in the order it happened.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A flow completed; its record is final.
    FlowDone(Arc<Flow>),
    /// The inspector labelled a flow (before its findings and its end).
    FlowLabels(Arc<FlowLabels>),
    /// A detector found personal data (sent before its flow completes).
    Finding(Arc<Finding>),
    /// The tester switched the consent phase.
    PhaseChanged(PhaseChange),
}

/// A consumer of session events (terminal log, JSONL file, HAR file...).
pub trait Sink: Send {
    /// Short name used in error messages (`"terminal"`, `"har"`).
    fn name(&self) -> &'static str;

    /// Handles one event. An error is reported once per sink and does not
    /// stop other sinks.
    fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()>;

    /// Makes everything handled so far durable/visible. Called when the
    /// channel goes idle, at least every second while it stays idle, and
    /// at the end of the session.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rewrites each event once before any sink sees it (`--redact`).
pub trait EventFilter: Send {
    fn apply(&mut self, event: SessionEvent) -> SessionEvent;
}

/// How long the sink thread pauses after a flush before it waits for the
/// next event: under load, events then come in batches (one flush and no
/// wake-up per event) at the cost of at most this much latency.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// How often an idle sink thread flushes anyway.
const IDLE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

enum Message {
    /// An event and the captured bytes it holds.
    Event(SessionEvent, u64),
    Close,
}

/// The captured bytes waiting in the queue, against their limit.
struct Backlog {
    state: Mutex<BacklogState>,
    drained: Condvar,
    limit: u64,
}

#[derive(Default)]
struct BacklogState {
    queued: u64,
    /// Senders waiting for room now.
    waiting: usize,
    /// Whether any sender ever had to wait (said once, in the log).
    has_waited: bool,
    /// The sink thread has stopped: nothing will drain the queue.
    closed: bool,
}

impl Backlog {
    /// Waits until `bytes` more fit under the limit (or the queue is empty,
    /// so one event larger than the limit still passes), then counts them.
    fn reserve(&self, bytes: u64) {
        let full = |s: &mut BacklogState| {
            !s.closed && s.queued > 0 && s.queued.saturating_add(bytes) > self.limit
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if full(&mut state) {
            if !std::mem::replace(&mut state.has_waited, true) {
                tracing::warn!(
                    "the evidence writers are behind: traffic waits for them while {} MiB of \
                     captured bodies are queued (--queue-limit)",
                    self.limit >> 20
                );
            }
            state.waiting += 1;
            state = self
                .drained
                .wait_while(state, full)
                .unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
        state.queued = state.queued.saturating_add(bytes);
    }

    fn release(&self, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.queued = state.queued.saturating_sub(bytes);
        // A wake-up is a system call: only when a sender is waiting.
        if state.waiting > 0 {
            self.drained.notify_all();
        }
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.drained.notify_all();
    }

    /// Queued bytes and waiting senders.
    #[cfg(test)]
    fn load(&self) -> (u64, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.queued, state.waiting)
    }
}

struct CloseOnExit(Arc<Backlog>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Sending half of the session channel. Cheap to clone.
#[derive(Clone)]
pub struct SessionTx {
    tx: mpsc::Sender<Message>,
    backlog: Arc<Backlog>,
}

impl SessionTx {
    /// Queues an event for the sinks. Blocks while the flows already queued
    /// hold the queue limit's worth of captured bytes and this one holds
    /// more (only completed flows carry any). After the hub has closed,
    /// events are dropped: nothing is listening any more.
    pub fn send(&self, event: SessionEvent) {
        let bytes = match &event {
            SessionEvent::FlowDone(flow) => flow.captured_bytes(),
            _ => 0,
        };
        if bytes > 0 {
            self.backlog.reserve(bytes);
        }
        if self.tx.send(Message::Event(event, bytes)).is_err() {
            self.backlog.release(bytes);
        }
    }
}

/// The thread that owns the sinks.
pub struct SinkHub {
    tx: mpsc::Sender<Message>,
    backlog: Arc<Backlog>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SinkHub {
    /// Starts the sink thread with the given sinks and the default queue
    /// limit.
    pub fn start(sinks: Vec<Box<dyn Sink>>) -> SinkHub {
        SinkHub::start_filtered(sinks, None, DEFAULT_QUEUE_LIMIT)
    }

    /// Starts the sink thread; every event passes `filter` first, and at
    /// most `queue_limit` captured bytes wait for it at once.
    pub fn start_filtered(
        sinks: Vec<Box<dyn Sink>>,
        filter: Option<Box<dyn EventFilter>>,
        queue_limit: u64,
    ) -> SinkHub {
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(Backlog {
            state: Mutex::new(BacklogState::default()),
            drained: Condvar::new(),
            limit: queue_limit,
        });
        let drains = CloseOnExit(backlog.clone());
        let thread = thread::Builder::new()
            .name("leakscope-sinks".into())
            // `drains` closes the queue however the thread ends (a
            // panicking sink too), so no sender waits for room that will
            // never come.
            .spawn(move || run_sinks(rx, sinks, filter, &drains.0))
            .expect("spawning the sink thread (out of threads?)");
        SinkHub {
            tx,
            backlog,
            thread: Some(thread),
        }
    }

    /// A sender for the proxy and pipeline.
    pub fn sender(&self) -> SessionTx {
        SessionTx {
            tx: self.tx.clone(),
            backlog: self.backlog.clone(),
        }
    }

    /// Delivers everything queued so far, flushes every sink and stops the
    /// thread. Events sent after this are dropped.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        let _ = self.tx.send(Message::Close);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SinkHub {
    fn drop(&mut self) {
        self.close_inner();
    }
}

fn run_sinks(
    rx: mpsc::Receiver<Message>,
    mut sinks: Vec<Box<dyn Sink>>,
    mut filter: Option<Box<dyn EventFilter>>,
    backlog: &Backlog,
) {
    let mut failed = vec![false; sinks.len()];
    loop {
        // Block for the next message; flush whenever the queue runs dry so
        // output is visible promptly without flushing per event.
        let message = match rx.try_recv() {
            Ok(message) => message,
            Err(mpsc::TryRecvError::Empty) => {
                flush_all(&mut sinks, &mut failed);
                // Under load, what arrives during this pause is handled as
                // one batch with one flush, and its senders need not wake
                // this thread; alone, an event still waits at most this.
                thread::sleep(BATCH_PAUSE);
                // Wake up now and then even when idle, so sinks that
                // rewrite on a schedule (the HAR) keep their promise.
                match rx.recv_timeout(IDLE_TICK) {
                    Ok(message) => message,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        match message {
            Message::Event(event, bytes) => {
                let event = match &mut filter {
                    Some(filter) => filter.apply(event),
                    None => event,
                };
                for (sink, failed) in sinks.iter_mut().zip(failed.iter_mut()) {
                    report(sink.name(), sink.handle(&event), failed);
                }
                backlog.release(bytes);
            }
            Message::Close => break,
        }
    }
    flush_all(&mut sinks, &mut failed);
}

fn flush_all(sinks: &mut [Box<dyn Sink>], failed: &mut [bool]) {
    for (sink, failed) in sinks.iter_mut().zip(failed.iter_mut()) {
        report(sink.name(), sink.flush(), failed);
    }
}

/// Says loudly when a sink starts failing, once, and again when it recovers.
fn report(name: &str, result: std::io::Result<()>, failed: &mut bool) {
    match result {
        Err(err) if !*failed => {
            *failed = true;
            tracing::error!(
                "{name} output failed: {err}; evidence for this output is NOT being written"
            );
        }
        Ok(()) if *failed => {
            *failed = false;
            tracing::warn!("{name} output is being written again");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowKind;
    use std::sync::Mutex;

    struct Collect(Arc<Mutex<Vec<u64>>>, Arc<Mutex<u32>>);

    impl Sink for Collect {
        fn name(&self) -> &'static str {
            "collect"
        }
        fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
            if let SessionEvent::FlowDone(flow) = event {
                self.0.lock().unwrap().push(flow.id);
            }
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            *self.1.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[test]
    fn close_delivers_everything_in_order_and_flushes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flushes = Arc::new(Mutex::new(0));
        let hub = SinkHub::start(vec![Box::new(Collect(seen.clone(), flushes.clone()))]);
        let tx = hub.sender();
        let addr = "127.0.0.1:1".parse().unwrap();
        let ids: Vec<u64> = (0..100)
            .map(|_| {
                let flow = Flow::new(FlowKind::Http, addr);
                let id = flow.id;
                tx.send(SessionEvent::FlowDone(Arc::new(flow)));
                id
            })
            .collect();
        hub.close();
        assert_eq!(*seen.lock().unwrap(), ids);
        assert!(*flushes.lock().unwrap() >= 1);
    }

    /// A completed flow holding `bytes` captured request-body bytes.
    fn flow_with_body(bytes: usize) -> Flow {
        Flow::posted(&vec![b'x'; bytes])
    }

    /// Holds the first flow until released; records every flow's id.
    struct Gate {
        first: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
        seen: Arc<Mutex<Vec<u64>>>,
    }

    impl Sink for Gate {
        fn name(&self) -> &'static str {
            "gate"
        }
        fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
            if let SessionEvent::FlowDone(flow) = event {
                if let Some((arrived, release)) = self.first.take() {
                    arrived.send(()).unwrap();
                    release.recv().unwrap();
                }
                self.seen.lock().unwrap().push(flow.id);
            }
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_holds_back_senders_at_the_queue_limit_and_loses_nothing() {
        const BODY: usize = 1_000;
        const LIMIT: u64 = 4_000;
        let (arrived_tx, arrived) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate {
            first: Some((arrived_tx, release_rx)),
            seen: seen.clone(),
        };
        let hub = SinkHub::start_filtered(vec![Box::new(gate)], None, LIMIT);
        let (tx, backlog) = (hub.sender(), hub.backlog.clone());
        let sender = thread::spawn(move || {
            (0..20)
                .map(|_| {
                    let flow = flow_with_body(BODY);
                    let id = flow.id;
                    tx.send(SessionEvent::FlowDone(Arc::new(flow)));
                    id
                })
                .collect::<Vec<u64>>()
        });
        arrived.recv().unwrap();
        // The writer is stuck on the first flow: the sender must end up
        // waiting with at most the limit queued, never finish.
        while backlog.load().1 == 0 {
            assert!(!sender.is_finished(), "20 KB queued past a 4 KB limit");
            thread::yield_now();
        }
        assert_eq!(backlog.load().0, LIMIT);
        release.send(()).unwrap();
        let ids = sender.join().unwrap();
        hub.close();
        assert_eq!(*seen.lock().unwrap(), ids);
        assert_eq!(backlog.load(), (0, 0));
    }

    struct Panics;

    impl Sink for Panics {
        fn name(&self) -> &'static str {
            "panics"
        }
        fn handle(&mut self, _: &SessionEvent) -> std::io::Result<()> {
            panic!("a sink bug");
        }
    }

    /// The first flow kills the writer with its bytes still counted; the
    /// next would wait for room forever if the dead writer did not close
    /// the queue.
    #[test]
    fn a_writer_that_dies_leaves_no_sender_waiting() {
        let hub = SinkHub::start_filtered(vec![Box::new(Panics)], None, 1_500);
        let tx = hub.sender();
        for _ in 0..3 {
            tx.send(SessionEvent::FlowDone(Arc::new(flow_with_body(1_000))));
        }
        hub.close();
    }

    /// Without the empty-queue exception this send would wait forever.
    #[test]
    fn a_flow_larger_than_the_limit_passes_an_empty_queue() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hub = SinkHub::start_filtered(
            vec![Box::new(Collect(seen.clone(), Default::default()))],
            None,
            100,
        );
        let tx = hub.sender();
        let flow = flow_with_body(1_000);
        let id = flow.id;
        tx.send(SessionEvent::FlowDone(Arc::new(flow)));
        hub.close();
        assert_eq!(*seen.lock().unwrap(), vec![id]);
    }
}
