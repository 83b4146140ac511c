//! The measured runs: a fixed number of requests over N connections, and
//! first-contact TLS handshakes through a proxy to many host names.

use crate::client::{self, Target};
use crate::origin::{DOWNLOAD_BODY, SMALL_BODY};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::Full;
use hudsucker::hyper::client::conn::http1::SendRequest;
use leakscope::detect::profile::DeviceProfile;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio_rustls::TlsConnector;

/// Longest a single request (or handshake) may take before it counts as
/// failed: a wedged proxy must end the run, not hang it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the form POST body.
const FORM_BODY: usize = 2048;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// GET of a ~100-byte body.
    Small,
    /// 2 KB form POST carrying the profile's identifiers.
    Post,
    /// GET of a 1 MiB body.
    Download,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Origin base URL, e.g. https://localhost:8443.
    #[arg(long)]
    url: String,
    /// HTTP proxy to go through; without it, straight to the origin.
    #[arg(long)]
    proxy: Option<SocketAddr>,
    /// PEM roots for TLS: the proxy's CA, or the origin's when direct.
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long, value_enum)]
    workload: Workload,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Requests to send in all.
    #[arg(long)]
    requests: u64,
    /// A new connection (CONNECT and TLS handshake included) per request.
    #[arg(long)]
    new_conn: bool,
    /// Stop starting requests after this long, so a slow proxy still ends
    /// in bounded time (the JSON says `"truncated": true`).
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,
    #[command(flatten)]
    cpu: ProxyCpu,
    /// Device profile whose identifiers the POST body carries.
    #[arg(long)]
    profile: Option<PathBuf>,
}

/// What a worker measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn fail(&mut self, err: anyhow::Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| format!("{err:#}"));
    }
}

/// Shared by the workers of a run.
struct Plan {
    target: Target,
    path: &'static str,
    body: Bytes,
    expect: usize,
    new_conn: bool,
    total: u64,
    started: AtomicU64,
    max_time: Duration,
    /// Workers with their connection open wait here; the clock starts
    /// when all of them (and `load`) have arrived.
    ready: Barrier,
}

impl Plan {
    /// Claims the next request, if the run is not over.
    fn claim(&self, deadline: Instant) -> bool {
        Instant::now() < deadline && self.started.fetch_add(1, Ordering::Relaxed) < self.total
    }

    async fn exchange(&self, conn: &mut SendRequest<Full<Bytes>>) -> anyhow::Result<usize> {
        let req = client::request(&self.target, self.path, &self.body)?;
        let len = client::exchange(conn, req).await?;
        anyhow::ensure!(
            len == self.expect,
            "body of {len} bytes, expected {}",
            self.expect
        );
        Ok(len)
    }
}

pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let target = Target::new(&args.url, args.proxy, args.ca.as_deref()).await?;
    let (path, body, expect) = match args.workload {
        Workload::Small => ("/small", Bytes::new(), SMALL_BODY),
        Workload::Post => {
            let profile = args
                .profile
                .as_deref()
                .context("--workload post needs --profile")?;
            ("/form", form_body(profile)?, SMALL_BODY)
        }
        Workload::Download => ("/download", Bytes::new(), DOWNLOAD_BODY),
    };
    let conns = args.conns.max(1);
    let plan = Arc::new(Plan {
        target,
        path,
        body,
        expect,
        new_conn: args.new_conn,
        total: args.requests,
        started: AtomicU64::new(0),
        max_time: Duration::from_secs_f64(args.max_seconds),
        ready: Barrier::new(conns + 1),
    });
    // One exchange before the clock: first-use costs (the TLS library seeds
    // its random generator, the proxy issues its certificate) are not what
    // a run measures.
    let mut conn = plan.target.connect().await.context("warm-up connection")?;
    plan.exchange(&mut conn).await.context("warm-up request")?;
    drop(conn);
    let workers: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(worker(plan.clone())))
        .collect();
    plan.ready.wait().await;
    let cpu_start = args.cpu.seconds()?;
    let start = Instant::now();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let done = tally.latencies.len() as u64;
    let mut line = summary(&mut tally.latencies, seconds);
    line["workload"] = json!(
        args.workload
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
    );
    line["scheme"] = json!(if plan.target.is_https() {
        "https"
    } else {
        "http"
    });
    line["conns"] = json!(args.conns);
    line["new_conn"] = json!(args.new_conn);
    line["mib_s"] = json!(tally.bytes as f64 / seconds / f64::from(1 << 20));
    line["errors"] = json!(tally.errors);
    line["proxy_cpu_s"] = json!(args.cpu.since(cpu_start).await?);
    line["truncated"] = json!(done + tally.errors < args.requests);
    println!("{line}");
    if let Some(err) = tally.first_error {
        bail!(
            "{} of {} requests failed; first: {err}",
            tally.errors,
            done + tally.errors
        );
    }
    Ok(())
}

async fn worker(plan: Arc<Plan>) -> Tally {
    let mut tally = Tally::default();
    // Keep-alive runs measure requests on open connections.
    let mut sender = None;
    if !plan.new_conn {
        match plan.target.connect().await {
            Ok(conn) => sender = Some(conn),
            Err(err) => tally.fail(err),
        }
    }
    plan.ready.wait().await;
    let deadline = Instant::now() + plan.max_time;
    while plan.claim(deadline) {
        let begin = Instant::now();
        let one = async {
            let mut conn = match sender.take() {
                Some(conn) => conn,
                None => plan.target.connect().await?,
            };
            let len = plan.exchange(&mut conn).await?;
            // Kept for the next request unless each gets its own; dropping
            // it closes the connection.
            if !plan.new_conn {
                sender = Some(conn);
            }
            anyhow::Ok(len)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, one).await {
            Ok(Ok(len)) => {
                tally.latencies.push(begin.elapsed());
                tally.bytes += (len + plan.body.len()) as u64;
            }
            Ok(Err(err)) => tally.fail(err),
            Err(_) => tally.fail(anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
    tally
}

/// A form of about [`FORM_BODY`] bytes: every profile value under its own
/// key, the location as `lat`/`lon`, then padding, as analytics SDKs send.
fn form_body(profile: &std::path::Path) -> anyhow::Result<Bytes> {
    let profile = DeviceProfile::load(profile)?;
    let mut pairs: Vec<(String, String)> = profile
        .values()
        .map(|(key, value)| (key.replace(':', "_"), value.expose().to_owned()))
        .collect();
    if let Some((lat, lon)) = profile.location() {
        pairs.push(("lat".into(), lat.to_string()));
        pairs.push(("lon".into(), lon.to_string()));
    }
    pairs.push(("event".into(), "app_open".into()));
    let mut body = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    body.push_str("&pad=");
    while body.len() < FORM_BODY {
        body.push('z');
    }
    Ok(Bytes::from(body))
}

/// application/x-www-form-urlencoded encoding of one key or value.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[derive(Args)]
pub struct HandshakeArgs {
    /// The proxy under test.
    #[arg(long)]
    proxy: SocketAddr,
    /// Where the CONNECTs point (a loopback listener, e.g. the origin): the
    /// host name is only in the TLS SNI, so a proxy that dials out when a
    /// tunnel opens still stays on this machine.
    #[arg(long)]
    target: SocketAddr,
    /// The proxy's CA certificate, PEM.
    #[arg(long)]
    ca: PathBuf,
    /// Distinct host names, h0000.<domain> onwards.
    #[arg(long, default_value_t = 1000)]
    hosts: u64,
    /// Concurrent handshakes.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    #[arg(long, default_value = "bench.test")]
    domain: String,
    #[command(flatten)]
    cpu: ProxyCpu,
}

/// First contact with many hosts: CONNECT, then a TLS handshake that
/// needs a freshly issued leaf certificate for each name.
pub async fn handshakes(args: HandshakeArgs) -> anyhow::Result<()> {
    client::ensure_loopback(args.proxy)?;
    client::ensure_loopback(args.target)?;
    let tls = client::tls_connector(&args.ca)?;
    // Outside the measured names, and before the clock (see `load`).
    first_contact(
        &tls,
        args.proxy,
        args.target,
        &format!("warm-up.{}", args.domain),
    )
    .await
    .context("warm-up handshake")?;
    let next = Arc::new(AtomicU64::new(0));
    let cpu_start = args.cpu.seconds()?;
    let start = Instant::now();
    let workers: Vec<_> = (0..args.conns.max(1))
        .map(|_| {
            let (tls, next, domain) = (tls.clone(), next.clone(), args.domain.clone());
            let (proxy, target, hosts) = (args.proxy, args.target, args.hosts);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= hosts {
                        break tally;
                    }
                    let host = format!("h{i:04}.{domain}");
                    let begin = Instant::now();
                    let one = first_contact(&tls, proxy, target, &host);
                    match tokio::time::timeout(REQUEST_TIMEOUT, one).await {
                        Ok(Ok(())) => tally.latencies.push(begin.elapsed()),
                        Ok(Err(err)) => tally.fail(err.context(host)),
                        Err(_) => tally.fail(anyhow::anyhow!("{host}: handshake timed out")),
                    }
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut line = summary(&mut tally.latencies, seconds);
    line["workload"] = json!("handshakes");
    line["conns"] = json!(args.conns);
    line["errors"] = json!(tally.errors);
    line["proxy_cpu_s"] = json!(args.cpu.since(cpu_start).await?);
    println!("{line}");
    if let Some(err) = tally.first_error {
        bail!(
            "{} of {} handshakes failed; first: {err}",
            tally.errors,
            args.hosts
        );
    }
    Ok(())
}

/// One tunnel through `proxy` to `target`, and a TLS handshake in it for
/// `host`, closed as soon as it completes.
async fn first_contact(
    tls: &TlsConnector,
    proxy: SocketAddr,
    target: SocketAddr,
    host: &str,
) -> anyhow::Result<()> {
    let mut tcp = TcpStream::connect(proxy).await?;
    tcp.set_nodelay(true)?;
    client::connect_tunnel(&mut tcp, &target.to_string()).await?;
    let mut tls = client::tls_handshake(tls, tcp, host).await?;
    tls.shutdown().await?;
    Ok(())
}

/// CPU time of the proxy under test over the measured window, from
/// /proc/<pid>/stat (user + system time of all its threads). Read here,
/// where the clock starts and stops, so that connections opened before
/// the clock are not counted.
#[derive(Args)]
struct ProxyCpu {
    /// Process id of the proxy, to report its CPU time (`proxy_cpu_s`).
    #[arg(long)]
    proxy_pid: Option<u32>,
}

impl ProxyCpu {
    fn seconds(&self) -> anyhow::Result<Option<f64>> {
        let Some(pid) = self.proxy_pid else {
            return Ok(None);
        };
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // The fields after the command name, which is in parentheses and
        // may itself hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| -> anyhow::Result<u64> {
            Ok(fields.get(i).context("short /proc stat line")?.parse()?)
        };
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        // utime and stime: fields 14 and 15 in proc(5), 11 and 12 here.
        Ok(Some((ticks(11)? + ticks(12)?) as f64 / per_second))
    }

    /// CPU seconds since `start`, read once the proxy has settled: work it
    /// still does for the run after the last response (logs) counts too.
    async fn since(&self, start: Option<f64>) -> anyhow::Result<Option<f64>> {
        let Some(start) = start else { return Ok(None) };
        let mut last = self.seconds()?.unwrap_or(start);
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.seconds()?.unwrap_or(last);
            if now == last {
                break;
            }
            last = now;
        }
        Ok(Some(last - start))
    }
}

/// Count, rate and latency percentiles of a run, as a JSON object.
fn summary(latencies: &mut [Duration], seconds: f64) -> serde_json::Value {
    latencies.sort_unstable();
    let ms = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        // Nearest rank: the smallest value with at least q of all at or below it.
        let rank = (q * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1e3
    };
    json!({
        "requests": latencies.len(),
        "seconds": seconds,
        "rps": latencies.len() as f64 / seconds,
        "p50_ms": ms(0.50),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
    })
}
