//! Command-line syntax. Parsing only: [`crate::app`] and [`crate::ca`] do
//! the work, and `main` turns errors into exit codes in one place.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "leakscope",
    version,
    about = "Privacy monitor for mobile apps: an intercepting proxy that records every flow"
)]
pub struct Cli {
    /// More diagnostics on stderr (-v: info, -vv: debug and hudsucker's own messages).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the intercepting proxy and record every flow.
    Run(Box<RunArgs>),
    /// Run the detectors over a HAR captured elsewhere (Chrome DevTools,
    /// mitmproxy, Charles, HTTP Toolkit, PCAPdroid, leakscope).
    Scan(Box<ScanArgs>),
    /// Create or inspect the certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Prepare an Android emulator or phone over adb: CA, proxy, device profile.
    #[command(subcommand)]
    Android(crate::android::AndroidCommand),
    /// Switch the consent phase of a running session.
    Mark {
        /// pre-consent, consented, refused or background.
        phase: crate::consent::ConsentPhase,
        /// The session's control API.
        #[arg(long, default_value = "127.0.0.1:8081")]
        control: SocketAddr,
    },
    /// Write report.html and summary.json for an output directory.
    Report {
        /// The output directory of a `run` or `scan` (its --out).
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Generate a new CA into the certs directory.
    Init {
        #[command(flatten)]
        certs: CertsDir,
        /// Replace an existing CA (devices trusting the old one must be updated).
        #[arg(long)]
        force: bool,
    },
    /// Print the CA's fingerprint, files and install steps.
    Show {
        #[command(flatten)]
        certs: CertsDir,
    },
}

#[derive(Debug, Args)]
pub struct CertsDir {
    /// Directory holding the CA files.
    #[arg(long = "certs", env = "LEAKSCOPE_CERTS", default_value = "certs")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address to listen on. An Android emulator reaches the host's loopback as 10.0.2.2.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Only clients in this network may use the proxy (repeatable), e.g. 192.168.1.0/24.
    #[arg(long = "allow", value_name = "CIDR")]
    pub allow: Vec<ipnet::IpNet>,

    /// Require Proxy-Authorization with these credentials.
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "LEAKSCOPE_AUTH",
        hide_env_values = true
    )]
    pub auth: Option<String>,

    /// Relay hosts matching this regex without decrypting them (recorded as tunnels).
    #[arg(long, value_name = "REGEX")]
    pub ignore_hosts: Option<regex::Regex>,

    /// Extra PEM root certificates trusted for upstream TLS (repeatable).
    #[arg(long = "upstream-ca", value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,

    /// DANGEROUS: do not verify upstream certificates.
    #[arg(long)]
    pub insecure_upstream: bool,

    #[command(flatten)]
    pub capture: CaptureArgs,

    /// Seconds to wait for an upstream to accept a connection.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,

    /// Seconds a client may take to send a request head; also closes idle
    /// keep-alive connections (slowloris protection).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub header_timeout: f64,

    /// Seconds without a byte moving before a connection is given up: an
    /// upstream that never answers or stalls, a client that stops reading.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub idle_timeout: f64,

    /// Seconds flows in flight may take to finish after Ctrl-C / SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub grace: f64,

    /// Output directory (default: a new directory under ./leakscope-out/
    /// named by the time; `help` spells it).
    #[arg(
        long,
        value_name = "DIR",
        help = "Output directory (default: ./leakscope-out/<start time>/)."
    )]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub certs: CertsDir,

    #[command(flatten)]
    pub privacy: PrivacyArgs,

    /// Control API address (POST /phase, GET /phase, GET /findings), or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:8081", value_parser = parse_control)]
    pub control: ControlAddr,

    /// Fixed upstream address for a host, like curl's --resolve (repeatable): HOST=IP:PORT.
    #[arg(long, value_name = "HOST=ADDR", value_parser = parse_resolve)]
    pub resolve: Vec<(String, SocketAddr)>,

    #[command(flatten)]
    pub android: crate::android::RunAndroidArgs,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The HAR file (also gzip- or zlib-compressed, like mitmproxy's .zhar).
    #[arg(value_name = "FILE.har")]
    pub har: PathBuf,

    #[command(flatten)]
    pub privacy: PrivacyArgs,

    /// When the user accepted the privacy policy: RFC 3339, or HH:MM:SS on
    /// the first entry's date and UTC offset. Before it: pre-consent.
    /// Without this, --refused-at or phase pages in the HAR, the whole
    /// capture counts as consented (nothing is flagged pre-consent).
    #[arg(long, value_name = "TIME")]
    pub consent_at: Option<String>,

    /// When the user refused (or withdrew) consent; same forms as --consent-at.
    #[arg(long, value_name = "TIME")]
    pub refused_at: Option<String>,

    /// Output directory (default: a new directory under ./leakscope-out/
    /// named by the time; `help` spells it).
    #[arg(
        long,
        value_name = "DIR",
        help = "Output directory (default: ./leakscope-out/scan-<scan time>/)."
    )]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub capture: CaptureArgs,
}

/// How much of each flow is kept and decoded, and how much may wait for
/// the evidence writers: shared by `run` and `scan`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Decoded bytes of each body kept in the record (e.g. 1MiB, 64k, 0).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub body_limit: u64,

    /// Decoded bytes produced per body before decoding stops (bounds decompression bombs).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub decode_limit: u64,

    /// Captured body bytes of completed flows that may wait for the
    /// evidence writers at once; past it, reading (traffic, or the HAR
    /// being scanned) waits for them to catch up.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub queue_limit: u64,
}

impl CaptureArgs {
    /// The body limits, checked against this platform's sizes.
    pub fn limits(&self) -> anyhow::Result<crate::flow::capture::CaptureLimits> {
        use anyhow::Context as _;
        Ok(crate::flow::capture::CaptureLimits {
            body_limit: usize::try_from(self.body_limit).context("--body-limit is too large")?,
            decode_limit: self.decode_limit,
        })
    }
}

/// Detector options shared by `run` and `scan`.
#[derive(Debug, Args)]
pub struct PrivacyArgs {
    /// Device profile (TOML) with the test device's real identifiers.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,

    /// The app's own backend domains, comma-separated (first party).
    #[arg(long, value_name = "DOMAINS", value_delimiter = ',')]
    pub app_domains: Vec<String>,

    /// The app's declared SDK list: one SDK name or vendor per line.
    #[arg(long, value_name = "FILE")]
    pub declared_sdks: Option<PathBuf>,

    /// Extra detector rules and SDK catalogue entries (*.toml), repeatable.
    #[arg(long = "detectors", value_name = "DIR")]
    pub detector_dirs: Vec<PathBuf>,

    /// More than N sends of one identifier to one recipient per window is over-frequent.
    #[arg(long, value_name = "N/WINDOW", default_value = "6/60s")]
    pub max_rate: crate::detect::verdict::FrequencyLimit,

    /// Nested containers (base64, gzip, URL encoding) opened at most inside a message.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub decode_depth: usize,

    /// Bytes one nested payload (a base64 run, gunzipped) may decode to; the rest is not read.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub nested_limit: u64,

    /// Longest base64 run that is decoded; longer runs are read as text only.
    #[arg(long, value_name = "SIZE", default_value = "256KiB", value_parser = parse_size)]
    pub max_base64_run: u64,

    /// Replace identifier values with their names in evidence.
    #[arg(long)]
    pub redact: bool,
}

impl PrivacyArgs {
    pub fn settings(&self) -> crate::detect::inspector::PrivacySettings {
        crate::detect::inspector::PrivacySettings {
            profile: self.profile.clone(),
            detector_dirs: self.detector_dirs.clone(),
            app_domains: self.app_domains.clone(),
            declared_sdks: self.declared_sdks.clone(),
            max_rate: self.max_rate,
            scan: crate::detect::scan::ScanLimits {
                decode_depth: self.decode_depth,
                nested_output: self.nested_limit,
                // Past the address space, no run is longer anyway.
                max_token: usize::try_from(self.max_base64_run).unwrap_or(usize::MAX),
            },
            redact: self.redact,
        }
    }
}

/// `--control`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlAddr(pub Option<SocketAddr>);

fn parse_control(text: &str) -> Result<ControlAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(ControlAddr(None));
    }
    text.parse()
        .map(|addr| ControlAddr(Some(addr)))
        .map_err(|_| format!("{text:?} is not an address; write e.g. 127.0.0.1:8081, or off"))
}

fn parse_resolve(text: &str) -> Result<(String, SocketAddr), String> {
    let (host, addr) = text.split_once('=').ok_or_else(|| {
        format!("{text:?}: write HOST=IP:PORT, e.g. api.example.com=127.0.0.1:8443")
    })?;
    let addr = addr
        .parse()
        .map_err(|_| format!("{text:?}: {addr:?} is not IP:PORT"))?;
    Ok((host.trim().to_ascii_lowercase(), addr))
}

/// Parses a byte size: a number with an optional k/M/G (powers of 1000) or
/// KiB/MiB/GiB (powers of 1024) suffix, case-insensitive for the letter.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 1048576, 1MiB, 512k"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use k, M, G, KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512k"), Ok(512_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert!(parse_size("ten").unwrap_err().contains("1MiB"));
        assert!(parse_size("5 parsecs").unwrap_err().contains("unit"));
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn the_nested_decoding_limits_reach_the_scans() {
        let privacy = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Run(run) => run.privacy.settings().scan,
            Command::Scan(scan) => scan.privacy.settings().scan,
            other => panic!("not run or scan: {other:?}"),
        };
        assert_eq!(
            privacy(&["leakscope", "run"]),
            crate::detect::scan::ScanLimits::default()
        );
        let set = ["--nested-limit", "64KiB", "--max-base64-run", "4k"];
        for sub in [&["leakscope", "run"][..], &["leakscope", "scan", "x.har"]] {
            let limits = privacy(&[sub, &set[..]].concat());
            assert_eq!((limits.nested_output, limits.max_token), (64 << 10, 4000));
        }
    }

    #[test]
    fn run_defaults_to_the_sessions_queue_limit_and_scan_takes_one() {
        let cli = Cli::try_parse_from(["leakscope", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run: {:?}", cli.command);
        };
        assert_eq!(
            args.capture.queue_limit,
            crate::session::DEFAULT_QUEUE_LIMIT
        );
        let cli = Cli::try_parse_from(["leakscope", "scan", "x.har", "--queue-limit", "1k"]);
        let Command::Scan(args) = cli.unwrap().command else {
            panic!("not scan");
        };
        assert_eq!(args.capture.queue_limit, 1000);
    }
}
