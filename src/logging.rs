//! Diagnostics on stderr, and the hook that lets the proxy read hudsucker's
//! own reports (see [`crate::proxy::watch`]).
//!
//! One global `tracing` subscriber carries two layers with their own
//! filters: the watch layer (always on, hudsucker spans and warnings only)
//! and a human-readable stderr layer (leakscope's warnings by default; more
//! with `-v`, or `RUST_LOG`).

use crate::proxy::watch::WatchLayer;
use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the subscriber. `verbose` 0 shows leakscope's warnings, 1 its
/// info, 2 adds hudsucker's own messages. `RUST_LOG` overrides the stderr
/// filter. Later calls do nothing.
pub fn init(verbose: u8) {
    INSTALLED.get_or_init(|| {
        let default = match verbose {
            0 => "leakscope=warn",
            1 => "leakscope=info",
            _ => "leakscope=debug,hudsucker=warn",
        };
        let stderr_filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(stderr_filter);
        let watch = WatchLayer.with_filter(filter::filter_fn(WatchLayer::wants));
        // Another subscriber may already be global (an embedding program);
        // the proxy still works, it only loses refused-TLS and tunnel records.
        let _ = tracing_subscriber::registry()
            .with(watch)
            .with(stderr)
            .try_init();
    });
}

/// Makes sure the watch layer is installed, with default verbosity.
pub fn ensure() {
    init(0);
}
