//! The commands, wired from validated arguments to the library.

use crate::ca::{CertAuthority, install_steps};
use crate::cli::{CaCommand, Cli, Command, RunArgs};
use crate::consent::{PhaseChange, PhaseClock};
use crate::control::PhaseSwitch;
use crate::detect::inspector::PrivacySettings;
use crate::flow::capture::CaptureLimits;
use crate::phase_keys;
use crate::pipeline::Pipeline;
use crate::proxy::{self, AccessPolicy, ProxyAuth, ProxyConfig, Timeouts};
use crate::session::{EventFilter, Sink, SinkHub};
use crate::sinks::findings::FindingsLog;
use crate::sinks::har::{HarOptions, HarWriter};
use crate::sinks::session_info::{SessionInfo, SessionInfoLog};
use crate::sinks::{flow_log::FlowLog, terminal::TerminalLog};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Runs one command. Every error is returned, with context, to `main`.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    crate::logging::init(cli.verbose);
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Scan(args) => crate::scan::run(*args),
        Command::Android(command) => crate::android::execute(command),
        Command::Ca(CaCommand::Init { certs, force }) => {
            let ca = CertAuthority::init(&certs.dir, force)?;
            println!("Created a new CA in {}", certs.dir.display());
            print_ca(&ca);
            Ok(())
        }
        Command::Ca(CaCommand::Show { certs }) => {
            print_ca(&CertAuthority::load(&certs.dir)?);
            Ok(())
        }
        Command::Mark { phase, control } => {
            let answer = crate::control::mark(control, phase).map_err(anyhow::Error::msg)?;
            println!("{answer}");
            Ok(())
        }
        Command::Report { dir } => {
            let (_, text) = crate::report::write_report(&dir)?;
            println!("{text}");
            Ok(())
        }
    }
}

fn print_ca(ca: &CertAuthority) {
    println!("{}", install_steps(ca));
}

/// `leakscope run`.
fn run(mut args: RunArgs) -> anyhow::Result<()> {
    let mut config = proxy_config(&args)?;
    let limits = args.capture.limits()?;
    let grace = seconds("--grace", args.grace)?;
    // --android: CA, proxy and device.toml (sets args.out and --profile).
    let android = crate::android::prepare_run(&mut args, default_out_dir)?;
    let (ca, created) = CertAuthority::load_or_init(&args.certs.dir)?;
    if created {
        println!(
            "Created a new CA in {} — install it on the device (`leakscope ca show`, or browse to http://leakscope.cert/ through the proxy).",
            args.certs.dir.display()
        );
    }
    let out = args.out.clone().unwrap_or_else(default_out_dir);
    let phases = PhaseClock::new();
    let findings_path = out.join("findings.jsonl");
    let Session {
        hub,
        pipeline,
        switch,
    } = start_session(SessionSpec {
        privacy: &args.privacy.settings(),
        limits,
        queue_limit: args.capture.queue_limit,
        out: &out,
        first_phase: phases.current(),
        phases,
        mode: "run",
        source: None,
        extra_sinks: vec![Box::new(TerminalLog::stdout())],
    })?;

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let served = runtime.block_on(async {
        let control = match args.control.0 {
            Some(addr) => start_control(addr, switch.clone(), findings_path).await,
            None => None,
        };
        // The app under test must not switch phases through the proxy.
        config.services.extend(control);
        crate::memory::spawn_trimmer(pipeline.clone());
        let proxy = proxy::start(&config, &ca, pipeline).await?;
        // Handlers first: a signal right after the banner must stop us
        // cleanly, not kill us with the default action.
        let mut stop = StopSignals::install()?;
        print_banner(&config, proxy.addr(), &ca, &out, control);
        if let Some(android) = &android {
            android.launch_app(); // --app: only now that the proxy listens
        }
        let _keys = phase_keys::start(switch);
        stop.wait().await;
        eprintln!("Stopping: letting flows in flight finish (up to {grace:?})...");
        let unfinished = proxy.shutdown(grace).await;
        if unfinished > 0 {
            eprintln!(
                "{unfinished} flow(s) still open after the grace period; recording them as aborted."
            );
        }
        anyhow::Ok(())
    });
    // Dropping the runtime drops every task still running; their flows are
    // recorded (as aborted) on the way out, before the sinks close.
    runtime.shutdown_timeout(Duration::from_secs(1));
    hub.close();
    served?;
    crate::report::print_after_session(&out);
    println!("Evidence written to {}", out.display());
    Ok(())
}

fn proxy_config(args: &RunArgs) -> anyhow::Result<ProxyConfig> {
    let auth = args
        .auth
        .as_deref()
        .map(ProxyAuth::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut config = ProxyConfig::new(args.listen);
    config.resolve = args.resolve.iter().cloned().collect();
    config.access = AccessPolicy {
        allow: args.allow.clone(),
        auth,
    };
    config.ignore_hosts = args.ignore_hosts.clone();
    config.upstream_ca = args.upstream_ca.clone();
    config.insecure_upstream = args.insecure_upstream;
    config.timeouts = Timeouts {
        connect: seconds("--connect-timeout", args.connect_timeout)?,
        header: seconds("--header-timeout", args.header_timeout)?,
        idle: seconds("--idle-timeout", args.idle_timeout)?,
    };
    Ok(config)
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        bail!("{flag} wants a number of seconds >= 0, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

pub(crate) fn default_out_dir() -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    PathBuf::from("leakscope-out").join(stamp)
}

/// What a session is set up from: shared by `run` (live) and `scan` (a
/// HAR replayed), so both write the same evidence the same way.
pub(crate) struct SessionSpec<'a> {
    pub privacy: &'a PrivacySettings,
    pub limits: CaptureLimits,
    /// Captured bytes that may wait for the evidence writers at once.
    pub queue_limit: u64,
    pub out: &'a Path,
    /// The session's phase clock, shared with the inspector.
    pub phases: PhaseClock,
    /// The phase the session starts in, and when (a scan's is the
    /// capture's start, not the clock's).
    pub first_phase: PhaseChange,
    /// `session.json`'s `mode` and `source`.
    pub mode: &'static str,
    pub source: Option<String>,
    /// Sinks after the evidence files (the terminal log of `run`).
    pub extra_sinks: Vec<Box<dyn Sink>>,
}

/// A session's running parts.
pub(crate) struct Session {
    pub hub: SinkHub,
    pub pipeline: Pipeline,
    pub switch: PhaseSwitch,
}

/// Compiles the detectors, creates the output directory, starts the sinks
/// and wires the inspector into a pipeline.
pub(crate) fn start_session(spec: SessionSpec<'_>) -> anyhow::Result<Session> {
    let mut privacy = spec.privacy.compile()?;
    std::fs::create_dir_all(spec.out)
        .with_context(|| format!("creating the output directory {}", spec.out.display()))?;
    let device = spec.privacy.device()?;
    // Evidence files first: a finding the terminal shows is already on disk
    // (findings.jsonl writes it at once), even if the process dies next.
    let mut sinks = session_sinks(&spec, device)?;
    sinks.extend(spec.extra_sinks);
    let redactor = privacy.redactor.take();
    let redactor = redactor.map(|r| Box::new(r) as Box<dyn EventFilter>);
    let hub = SinkHub::start_filtered(sinks, redactor, spec.queue_limit);
    let inspector = privacy.inspector(spec.phases.clone(), hub.sender());
    let pipeline = Pipeline::new(vec![Arc::new(inspector)], spec.limits, hub.sender());
    let switch = PhaseSwitch::new(spec.phases, hub.sender());
    Ok(Session {
        hub,
        pipeline,
        switch,
    })
}

/// The evidence sinks of a session: flows.jsonl, findings.jsonl, HAR,
/// session.json.
fn session_sinks(
    spec: &SessionSpec<'_>,
    device: (Option<String>, Option<String>),
) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let (out, first_phase) = (spec.out, spec.first_phase);
    let open = |name: &str| out.join(name);
    let info = SessionInfo {
        leakscope_version: env!("CARGO_PKG_VERSION").to_owned(),
        mode: spec.mode.to_owned(),
        started: first_phase.since,
        ended: None,
        device_model: device.0,
        app: device.1,
        source: spec.source.clone(),
        phases: vec![first_phase.into()],
        flows: 0,
        findings: 0,
    };
    let info = SessionInfoLog::new(out, info)
        .with_context(|| format!("writing {}", open("session.json").display()))?;
    let flows = FlowLog::open(&open("flows.jsonl"))
        .with_context(|| format!("opening {}", open("flows.jsonl").display()))?;
    let findings = FindingsLog::open(&open("findings.jsonl"))
        .with_context(|| format!("opening {}", open("findings.jsonl").display()))?;
    let har = HarWriter::create(out, HarOptions::new(first_phase))
        .with_context(|| format!("creating the HAR in {}", out.display()))?;
    Ok(vec![
        Box::new(flows),
        Box::new(findings),
        Box::new(har),
        Box::new(info),
    ])
}

/// Starts the control API; a busy port is a warning, not a failure: the
/// session still records, and phases can still be switched with keys.
async fn start_control(
    addr: SocketAddr,
    switch: PhaseSwitch,
    findings: PathBuf,
) -> Option<SocketAddr> {
    if !addr.ip().is_loopback() {
        eprintln!("WARNING: the control API on {addr} is reachable from the network.");
    }
    match crate::control::serve(addr, switch, findings).await {
        Ok(bound) => Some(bound),
        Err(err) => {
            eprintln!(
                "WARNING: control API not started on {addr}: {err} (use --control ADDR or --control off)"
            );
            None
        }
    }
}

fn print_banner(
    config: &ProxyConfig,
    addr: SocketAddr,
    ca: &CertAuthority,
    out: &std::path::Path,
    control: Option<SocketAddr>,
) {
    eprintln!("leakscope proxy listening on {addr}");
    if !addr.ip().is_loopback() {
        eprintln!(
            "WARNING: {} is not a loopback address: the proxy is reachable from the network.{}",
            addr.ip(),
            if config.access.allow.is_empty() && config.access.auth.is_none() {
                " Limit who may use it with --allow CIDR and/or --auth USER:PASS."
            } else {
                ""
            }
        );
    }
    if config.insecure_upstream {
        eprintln!("WARNING: --insecure-upstream: upstream certificates are NOT verified.");
    }
    eprintln!("CA fingerprint (SHA-256): {}", ca.fingerprint_sha256());
    eprintln!("Install page (through the proxy): http://leakscope.cert/");
    if let Some(control) = control {
        eprintln!(
            "Control API: http://{control}/phase  (leakscope mark consented --control {control})"
        );
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("{}", crate::phase_keys::legend());
    }
    eprintln!("Recording to {}; Ctrl-C to stop.", out.display());
}

/// Ctrl-C and SIGTERM, registered at once so none is missed.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt())
                    .context("installing the Ctrl-C handler")?,
                terminate: signal(SignalKind::terminate())
                    .context("installing the SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
