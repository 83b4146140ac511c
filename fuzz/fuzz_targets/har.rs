//! The offline HAR reader (`leakscope scan`): a file written by any tool,
//! or by nobody, must give a clear error or a replay, never a panic.
//!
//! Every input goes through the reader (plain, gzip or zlib), the phase
//! pages, the timeline, and the per-entry conversion; each entry that
//! converts is then replayed, as `scan` replays it, through a pipeline
//! with the privacy inspector (example profile) whose events are
//! serialised the way the JSONL sinks write them.
//!
//! The pipeline is built once: each session leaks its compiled detectors
//! on purpose (they are borrowed for the session's whole life), so a
//! session per input would run the fuzzer out of memory.

#![no_main]

use leakscope::consent::PhaseClock;
use leakscope::detect::inspector::PrivacySettings;
use leakscope::flow::capture::CaptureLimits;
use leakscope::pipeline::Pipeline;
use leakscope::scan::har_input::{JsonPath, read_har_bytes};
use leakscope::scan::phases::{self, Timeline};
use leakscope::scan::{entry, replay};
use leakscope::session::{SessionEvent, Sink, SinkHub};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::LazyLock;

/// Serialises every event as the evidence sinks would, then drops it.
struct Serialise;

impl Sink for Serialise {
    fn name(&self) -> &'static str {
        "serialise"
    }

    fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
        match event {
            SessionEvent::FlowDone(flow) => serde_json::to_vec(flow.as_ref())?,
            SessionEvent::Finding(finding) => serde_json::to_vec(finding.as_ref())?,
            _ => Vec::new(),
        };
        Ok(())
    }
}

static PIPELINE: LazyLock<(Pipeline, SinkHub)> = LazyLock::new(|| {
    let profile =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../detectors/example-profile.toml");
    let settings = PrivacySettings {
        profile: Some(profile),
        ..PrivacySettings::default()
    };
    let hub = SinkHub::start(vec![Box::new(Serialise)]);
    let inspector = settings
        .compile()
        .expect("the example profile compiles")
        .inspector(PhaseClock::new(), hub.sender());
    let pipeline = Pipeline::new(
        vec![std::sync::Arc::new(inspector)],
        CaptureLimits::default(),
        hub.sender(),
    );
    (pipeline, hub)
});

fuzz_target!(|input: &[u8]| {
    let Ok(har) = read_har_bytes(input, "fuzz.har") else {
        return;
    };
    let mut warnings = Vec::new();
    let points = phases::from_pages(har.pages, &mut warnings);
    let starts: Vec<_> = har.entries.iter().filter_map(entry::start_of).collect();
    let first = starts
        .iter()
        .min()
        .copied()
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut timeline = Timeline::new(points, first);
    let _ = timeline.initial();
    let root = JsonPath::root("log");
    let list = root.key("entries");
    for (index, raw) in har.entries.into_iter().enumerate() {
        let Ok((scan_entry, _warnings)) = entry::convert(raw, &list.index(index)) else {
            continue;
        };
        let pageref = scan_entry.pageref.as_deref();
        let _ = timeline.page_order(pageref);
        let _ = timeline.before(scan_entry.timing.start, pageref);
        replay(&PIPELINE.0, scan_entry);
    }
    let _ = timeline.remaining();
});
