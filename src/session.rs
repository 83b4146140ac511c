//! Session events and the sinks that consume them.
//!
//! Everything a session produces travels as a [`SessionEvent`] over one
//! channel to a dedicated thread that owns the sinks (terminal log, files).
//! Sinks do blocking I/O on that thread, so a slow disk or terminal never
//! stalls the proxy's async workers, and sinks never call back into the
//! proxy. A sink that fails is reported and the others carry on.

use crate::consent::PhaseChange;
use crate::detect::finding::{Finding, FlowLabels};
use crate::flow::Flow;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

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
    Event(SessionEvent),
    Close,
}

/// Sending half of the session channel. Cheap to clone; sending never
/// blocks the caller.
#[derive(Clone)]
pub struct SessionTx {
    tx: mpsc::Sender<Message>,
}

impl SessionTx {
    /// Queues an event for the sinks. After the hub has closed, events are
    /// dropped: nothing is listening any more.
    pub fn send(&self, event: SessionEvent) {
        let _ = self.tx.send(Message::Event(event));
    }
}

/// The thread that owns the sinks.
pub struct SinkHub {
    tx: mpsc::Sender<Message>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SinkHub {
    /// Starts the sink thread with the given sinks.
    pub fn start(sinks: Vec<Box<dyn Sink>>) -> SinkHub {
        SinkHub::start_filtered(sinks, None)
    }

    /// Starts the sink thread; every event passes `filter` first.
    pub fn start_filtered(
        sinks: Vec<Box<dyn Sink>>,
        filter: Option<Box<dyn EventFilter>>,
    ) -> SinkHub {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("leakscope-sinks".into())
            .spawn(move || run_sinks(rx, sinks, filter))
            .expect("spawning the sink thread (out of threads?)");
        SinkHub {
            tx,
            thread: Some(thread),
        }
    }

    /// A sender for the proxy and pipeline.
    pub fn sender(&self) -> SessionTx {
        SessionTx {
            tx: self.tx.clone(),
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
            Message::Event(event) => {
                let event = match &mut filter {
                    Some(filter) => filter.apply(event),
                    None => event,
                };
                for (sink, failed) in sinks.iter_mut().zip(failed.iter_mut()) {
                    report(sink.name(), sink.handle(&event), failed);
                }
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
}
