//! Shared test harness: a real local origin and the real proxy, both on
//! loopback ephemeral ports, with the proxy's flow records delivered to the
//! test through a channel (the same sink interface the terminal log uses).

#![allow(dead_code)]

pub mod bin;
pub mod mem;
pub mod origin;
pub mod panics;
pub mod raw;
pub mod tunnel;

use leakscope::ca::CertAuthority;
use leakscope::consent::PhaseClock;
use leakscope::control::PhaseSwitch;
use leakscope::detect::finding::Finding;
use leakscope::detect::inspector::PrivacySettings;
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

/// Forwards every completed flow and every finding to the test.
struct ChannelSink {
    flows: mpsc::UnboundedSender<Arc<Flow>>,
    findings: mpsc::UnboundedSender<Arc<Finding>>,
}

impl Sink for ChannelSink {
    fn name(&self) -> &'static str {
        "test-channel"
    }
    fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
        match event {
            SessionEvent::FlowDone(flow) => drop(self.flows.send(flow.clone())),
            SessionEvent::Finding(finding) => drop(self.findings.send(finding.clone())),
            _ => {}
        }
        Ok(())
    }
}

pub struct Harness {
    pub origin: Origin,
    pub ca: CertAuthority,
    /// Switches the session's consent phase (as the control API does).
    pub phases: PhaseSwitch,
    proxy: Option<RunningProxy>,
    hub: Option<SinkHub>,
    flows: mpsc::UnboundedReceiver<Arc<Flow>>,
    findings: mpsc::UnboundedReceiver<Arc<Finding>>,
    /// Findings received but not yet asked for.
    unclaimed: Vec<Arc<Finding>>,
    _certs: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    pub limits: CaptureLimits,
    pub inspectors: Vec<Arc<dyn Inspector>>,
    /// When set, the privacy inspector runs with these settings.
    pub privacy: Option<PrivacySettings>,
    /// Host names the proxy resolves to the origin's plain-HTTP listener
    /// (`--resolve`), so tests can use real SDK host names on loopback.
    pub hosts_at_origin: Vec<String>,
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
        for host in &options.hosts_at_origin {
            config.resolve.insert(host.clone(), origin.http_addr);
        }
        configure(&mut config);
        let (flows_tx, flows) = mpsc::unbounded_channel();
        let (findings_tx, findings) = mpsc::unbounded_channel();
        let sink = ChannelSink {
            flows: flows_tx,
            findings: findings_tx,
        };
        let hub = SinkHub::start(vec![Box::new(sink)]);
        let clock = PhaseClock::new();
        let mut inspectors = options.inspectors;
        if let Some(privacy) = options.privacy {
            let compiled = privacy.compile().expect("detector settings");
            inspectors.push(Arc::new(compiled.inspector(clock.clone(), hub.sender())));
        }
        let phases = PhaseSwitch::new(clock, hub.sender());
        let pipeline = Pipeline::new(inspectors, options.limits, hub.sender());
        let proxy = proxy::start(&config, &ca, pipeline)
            .await
            .expect("starting the proxy");
        Harness {
            origin,
            ca,
            phases,
            proxy: Some(proxy),
            hub: Some(hub),
            flows,
            findings,
            unclaimed: Vec::new(),
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

    /// GET `url` through the proxy with [`Harness::client`].
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client()
            .get(url)
            .send()
            .await
            .expect("GET through the proxy")
    }

    /// The next completed flow; fails the test after [`FLOW_WAIT`].
    pub async fn next_flow(&mut self) -> Arc<Flow> {
        tokio::time::timeout(FLOW_WAIT, self.flows.recv())
            .await
            .expect("a flow record within the wait limit")
            .expect("flow channel open")
    }

    /// Findings of the flow with `flow_id`, in the order they were made.
    /// Call it after that flow's record arrived: findings always precede it.
    pub fn findings_of(&mut self, flow_id: u64) -> Vec<Arc<Finding>> {
        while let Ok(finding) = self.findings.try_recv() {
            self.unclaimed.push(finding);
        }
        let (mine, others) = std::mem::take(&mut self.unclaimed)
            .into_iter()
            .partition(|f| f.flow_id == flow_id);
        self.unclaimed = others;
        mine
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
