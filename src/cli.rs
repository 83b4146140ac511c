//! Command-line syntax. Parsing only: [`crate::run`] and [`crate::ca`] do
//! the work, and `main` turns errors into exit codes in one place.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "leakscope", version, about = "Privacy monitor for mobile apps: an intercepting proxy that records every flow")]
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
    Run(RunArgs),
    /// Create or inspect the certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
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
    #[arg(long, value_name = "USER:PASS", env = "LEAKSCOPE_AUTH", hide_env_values = true)]
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

    /// Decoded bytes of each body kept in the record (e.g. 1MiB, 64k, 0).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub body_limit: u64,

    /// Decoded bytes produced per body before decoding stops (bounds decompression bombs).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub decode_limit: u64,

    /// Seconds to wait for an upstream to accept a connection.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,

    /// Seconds flows in flight may take to finish after Ctrl-C / SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub grace: f64,

    /// Output directory (default: ./leakscope-out/<start time>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub certs: CertsDir,
}

/// Parses a byte size: a number with an optional k/M/G (powers of 1000) or
/// KiB/MiB/GiB (powers of 1024) suffix, case-insensitive for the letter.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
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
        other => return Err(format!("unknown size unit {other:?}; use k, M, G, KiB, MiB or GiB")),
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
}
