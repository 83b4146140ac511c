//! Giving memory back to the system after a burst of traffic.
//!
//! glibc's allocator keeps freed memory in per-thread arenas; after a load
//! peak of a thousand connections the process would sit at its peak size
//! for the rest of the session. Once the proxy has gone quiet (no flow in
//! flight) after being busy, `malloc_trim` returns the free pages.

use crate::pipeline::Pipeline;
use std::time::Duration;

/// How often the proxy checks whether it has gone quiet.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Spawns the trimming task on the current runtime; it ends with it.
pub fn spawn_trimmer(pipeline: Pipeline) {
    tokio::spawn(async move {
        let mut busy = false;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tick.tick().await;
            if pipeline.in_flight() > 0 {
                busy = true;
            } else if std::mem::take(&mut busy) {
                // Blocking but short (it walks the arenas' free lists).
                tokio::task::spawn_blocking(trim);
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim has no preconditions; 0 keeps no padding.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
