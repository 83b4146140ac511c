//! Shared test harness: a real local origin and the real proxy, both on
//! loopback ephemeral ports, with the proxy's flow records delivered to the
//! test through a channel (the same sink interface the terminal log uses).

#![allow(dead_code)]

pub mod origin;

use leakscope::ca::CertAuthority;
use leakscope::flow::Flow;
use leakscope::flow::capture::CaptureLimits;
use leakscope::pipeline::{Inspector, Pipeline};
use leakscope::proxy::{self, ProxyConfig, RunningProxy};
use leakscope::session::{SessionEvent, Sink, SinkHub};
use origin::Origin;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a test waits for a flow record before failing. Generous: it
/// bounds a failure, it never paces a passing test.
pub const FLOW_WAIT: Duration = Duration::from_secs(20);

/// Forwards every completed flow to the test.
struct ChannelSink(mpsc::UnboundedSender<Arc<Flow>>);

impl Sink for ChannelSink {
    fn name(&self) -> &'static str {
        "test-channel"
    }
    fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
        if let SessionEvent::FlowDone(flow) = event {
            let _ = self.0.send(flow.clone());
        }
        Ok(())
    }
}

pub struct Harness {
    pub origin: Origin,
    pub ca: CertAuthority,
    proxy: Option<RunningProxy>,
    hub: Option<SinkHub>,
    flows: mpsc::UnboundedReceiver<Arc<Flow>>,
    _certs: tempfile::TempDir,
}

pub struct Options {
    pub limits: CaptureLimits,
    pub inspectors: Vec<Arc<dyn Inspector>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: CaptureLimits::default(),
            inspectors: Vec::new(),
        }
    }
}

impl Harness {
    /// Origin + proxy with default settings (trusting the origin's test CA).
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}, Options::default()).await
    }

    /// Origin + proxy; `configure` adjusts the proxy config before start.
    pub async fn start_with(configure: impl FnOnce(&mut ProxyConfig), options: Options) -> Harness {
        let origin = Origin::start().await;
        let certs = tempfile::tempdir().expect("temp dir for the CA");
        let ca = CertAuthority::init(certs.path(), false).expect("creating a CA");
        let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap());
        config.upstream_ca = vec![origin.ca_pem_path.clone()];
        configure(&mut config);
        let (tx, flows) = mpsc::unbounded_channel();
        let hub = SinkHub::start(vec![Box::new(ChannelSink(tx))]);
        let pipeline = Pipeline::new(options.inspectors, options.limits, hub.sender());
        let proxy = proxy::start(&config, &ca, pipeline)
            .await
            .expect("starting the proxy");
        Harness {
            origin,
            ca,
            proxy: Some(proxy),
            hub: Some(hub),
            flows,
            _certs: certs,
        }
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy.as_ref().expect("proxy running").addr()
    }

    /// A reqwest client going through the proxy and trusting only its CA.
    pub fn client(&self) -> reqwest::Client {
        origin::proxied_client(self.proxy_addr(), &[self.ca.cert_pem()])
    }

    /// The next completed flow; fails the test after [`FLOW_WAIT`].
    pub async fn next_flow(&mut self) -> Arc<Flow> {
        tokio::time::timeout(FLOW_WAIT, self.flows.recv())
            .await
            .expect("a flow record within the wait limit")
            .expect("flow channel open")
    }

    /// Waits for the first flow satisfying `pred`, skipping others.
    pub async fn flow_where(&mut self, pred: impl Fn(&Flow) -> bool) -> Arc<Flow> {
        loop {
            let flow = self.next_flow().await;
            if pred(&flow) {
                return flow;
            }
        }
    }

    /// Stops the proxy with `grace` for flows in flight; returns how many
    /// were still unfinished.
    pub async fn shutdown_proxy(&mut self, grace: Duration) -> usize {
        let proxy = self.proxy.take().expect("proxy running");
        proxy.shutdown(grace).await
    }

    /// Stops the proxy (grace `grace`), closes the sinks and returns every
    /// flow not yet taken.
    pub async fn stop(&mut self, grace: Duration) -> Vec<Arc<Flow>> {
        if let Some(proxy) = self.proxy.take() {
            proxy.shutdown(grace).await;
        }
        if let Some(hub) = self.hub.take() {
            tokio::task::spawn_blocking(move || hub.close())
                .await
                .expect("closing sinks");
        }
        let mut rest = Vec::new();
        while let Ok(flow) = self.flows.try_recv() {
            rest.push(flow);
        }
        rest
    }
}

/// Finds a header value in a flow record (case-insensitive name).
pub fn header<'a>(headers: &'a [leakscope::flow::Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}
