//! Giving memory back to the system after a burst of traffic.
//!
//! glibc's allocator keeps freed memory in per-thread arenas; after a load
//! peak of a thousand connections the process would sit at its peak size
//! for the rest of the session. Once the proxy has gone quiet (no flow in
//! flight) after handling traffic, `malloc_trim` returns the free pages.

use crate::pipeline::Pipeline;
use std::time::Duration;

/// How often the proxy checks whether it has gone quiet.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Spawns the trimming task on the current runtime; it ends with it.
pub fn spawn_trimmer(pipeline: Pipeline) {
    tokio::spawn(async move {
        let mut quiet = QuietAfterWork::default();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tick.tick().await;
            if quiet.due(pipeline.opened(), pipeline.in_flight()) {
                // Blocking but short (it walks the arenas' free lists).
                tokio::task::spawn_blocking(trim);
            }
        }
    });
}

/// Decides, from periodic looks at the flow counters, when a trim is due:
/// once no flow is in flight and flows were opened since the last trim.
/// Counting opened flows, not only sampling those in flight, catches a
/// burst that starts and ends between two looks (a thousand requests can
/// take under a second).
#[derive(Debug, Default)]
struct QuietAfterWork {
    /// Flows opened when memory was last trimmed.
    trimmed_at: u64,
}

impl QuietAfterWork {
    fn due(&mut self, opened: u64, in_flight: usize) -> bool {
        if in_flight > 0 || opened == self.trimmed_at {
            return false;
        }
        self.trimmed_at = opened;
        true
    }
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

#[cfg(test)]
mod tests {
    use super::QuietAfterWork;

    #[test]
    fn a_burst_between_two_looks_is_trimmed_after() {
        let mut quiet = QuietAfterWork::default();
        assert!(!quiet.due(0, 0), "nothing happened yet");
        // 3,000 flows opened and closed between two ticks.
        assert!(quiet.due(3000, 0));
        assert!(!quiet.due(3000, 0), "trimmed once per burst");
    }

    #[test]
    fn no_trim_while_flows_are_in_flight() {
        let mut quiet = QuietAfterWork::default();
        assert!(!quiet.due(10, 4));
        assert!(!quiet.due(25, 1));
        assert!(quiet.due(25, 0));
        assert!(!quiet.due(25, 0));
        assert!(quiet.due(26, 0), "one more flow is work too");
    }
}
