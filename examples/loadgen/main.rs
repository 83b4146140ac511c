//! Load generator and origin server for `bench/run`, loopback only.
//!
//! - `origin`: HTTP and HTTPS origin serving fixed bodies from memory;
//! - `load`: a fixed number of requests (small GET, 2 KB form POST, 1 MiB
//!   download) over N keep-alive or one-shot connections, straight or
//!   through a proxy; prints requests/s, MiB/s and latency percentiles as
//!   one JSON line;
//! - `handshakes`: first-contact TLS through a proxy to many host names,
//!   which measures the proxy's certificate issuing;
//! - `forms`: the byte forms leakscope searches for a profile's values, one
//!   `identifier<TAB>hex` per line, so a competing proxy's addon can search
//!   exactly the same strings.

mod client;
mod load;
mod origin;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the benchmark origin (HTTP and HTTPS, bodies from memory).
    Origin(origin::OriginArgs),
    /// Send one workload, direct or through a proxy, and print its figures
    /// as one JSON line.
    Load(load::LoadArgs),
    /// Time first-contact TLS handshakes to many host names through a proxy.
    Handshakes(load::HandshakeArgs),
    /// Print the byte forms of a profile's values, for the mitmproxy addon.
    Forms {
        /// Device profile (TOML).
        #[arg(long)]
        profile: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Origin(args) => origin::run(args).await,
        Command::Load(args) => load::load(args).await,
        Command::Handshakes(args) => load::handshakes(args).await,
        Command::Forms { profile } => {
            let profile = leakscope::detect::profile::DeviceProfile::load(&profile)?;
            for form in leakscope::detect::expand::expand(&profile) {
                let hex: String = form.bytes.iter().map(|b| format!("{b:02x}")).collect();
                println!("{}\t{hex}", form.identifier);
            }
            Ok(())
        }
    }
}
