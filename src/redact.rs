//! `--redact`: identifier values masked in every output.
//!
//! Detectors already mask the value in a finding's evidence. The flow
//! records carry the raw traffic, though — URLs, headers, captured bodies,
//! WebSocket messages — and they reach flows.jsonl, the HAR, the terminal
//! and the report. The [`Redactor`] sits between the session channel and
//! every sink: each event is rewritten once, before any sink sees it, with
//! every occurrence of a profile value (in any form the known-value search
//! knows: case, separators, URL, hex, base64, digests) and every value a
//! pattern or key detector reported for that flow replaced by
//! `[identifier]`.
//!
//! Limits: evidence is an excerpt, so a value cut by its edge leaves a
//! fragment no search recognises. A value only present after decoding (inside gzip, or base64 of
//! a longer blob at no aligned offset) cannot be cut out of the raw bytes;
//! the captured body is then kept as is. Findings precede their flow's end
//! on the channel, so pattern and key values are known when the flow
//! record is rewritten; they are forgotten when it has been.

use crate::detect::known::{KnownMatch, KnownValueMatcher};
use crate::flow::{Flow, FlowId, Header};
use crate::session::{EventFilter, SessionEvent};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

/// Flows whose reported values are remembered at most, waiting for the
/// flow's end (bounds memory when flows never finish).
const MAX_PENDING_FLOWS: usize = 10_000;

pub struct Redactor {
    known: KnownValueMatcher,
    /// Values pattern and key detectors reported, per flow in flight.
    reported: HashMap<FlowId, Vec<(String, String)>>,
}

impl Redactor {
    pub fn new(known: KnownValueMatcher) -> Redactor {
        Redactor {
            known,
            reported: HashMap::new(),
        }
    }

    /// `text` with every identifier value in it replaced by `[identifier]`.
    pub fn text(&self, text: &str, reported: &[(String, String)]) -> String {
        let masked = self.bytes(text.as_bytes(), reported);
        String::from_utf8_lossy(&masked).into_owned()
    }

    fn bytes(&self, data: &[u8], reported: &[(String, String)]) -> Vec<u8> {
        let mut spans: Vec<(usize, usize, String)> = Vec::new();
        let mut stream = self.known.stream();
        let mut add = |m: KnownMatch| spans.push((m.start as usize, m.end as usize, m.identifier));
        stream.feed(data, &mut add);
        stream.finish(&mut add);
        for (identifier, value) in reported {
            if value.is_empty() {
                continue;
            }
            let needle = value.as_bytes();
            let mut from = 0;
            while let Some(at) = find(&data[from..], needle) {
                spans.push((from + at, from + at + needle.len(), identifier.clone()));
                from += at + needle.len();
            }
        }
        mask(data, spans)
    }

    fn body(&self, captured: &Bytes, reported: &[(String, String)]) -> Bytes {
        Bytes::from(self.bytes(captured, reported))
    }

    fn headers(&self, headers: &mut [Header], reported: &[(String, String)]) {
        for header in headers {
            header.value = self.text(&header.value, reported);
        }
    }

    /// A copy of `flow` with identifier values masked.
    fn flow(&mut self, flow: &Flow) -> Flow {
        let reported = self.reported.remove(&flow.id).unwrap_or_default();
        let mut flow = flow.clone();
        if let Some(request) = &mut flow.request {
            request.url = self.text(&request.url, &reported);
            self.headers(&mut request.headers, &reported);
            request.body.captured = self.body(&request.body.captured, &reported);
        }
        if let Some(response) = &mut flow.response {
            self.headers(&mut response.headers, &reported);
            response.body.captured = self.body(&response.body.captured, &reported);
        }
        if let Some(ws) = &mut flow.websocket {
            for message in &mut ws.messages {
                message.data = self.body(&message.data, &reported);
            }
        }
        if let Some(error) = &mut flow.error {
            error.message = self.text(&error.message, &reported);
        }
        flow
    }
}

impl EventFilter for Redactor {
    fn apply(&mut self, event: SessionEvent) -> SessionEvent {
        match event {
            SessionEvent::Finding(finding) => {
                let mut masked = (*finding).clone();
                if let Some(value) = &finding.value {
                    if self.reported.len() >= MAX_PENDING_FLOWS {
                        self.reported.clear();
                    }
                    let values = self.reported.entry(finding.flow_id).or_default();
                    values.push((finding.identifier.clone(), value.expose().to_owned()));
                }
                let reported = self
                    .reported
                    .get(&finding.flow_id)
                    .cloned()
                    .unwrap_or_default();
                masked.url = self.text(&finding.url, &reported);
                // The detector masked its own value; the context around it
                // may hold another identifier's.
                masked.evidence = self.text(&finding.evidence, &reported);
                SessionEvent::Finding(Arc::new(masked))
            }
            SessionEvent::FlowDone(flow) => SessionEvent::FlowDone(Arc::new(self.flow(&flow))),
            other => other,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Replaces the byte ranges in `spans` (overlapping or not) with
/// `[identifier]` of the first span of each merged run.
fn mask(data: &[u8], mut spans: Vec<(usize, usize, String)>) -> Vec<u8> {
    if spans.is_empty() {
        return data.to_vec();
    }
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for (start, end, identifier) in spans {
        let (start, end) = (start.min(data.len()), end.min(data.len()));
        if end <= at {
            continue;
        }
        if start >= at {
            out.extend_from_slice(&data[at..start]);
            out.extend_from_slice(format!("[{identifier}]").as_bytes());
        }
        at = end;
    }
    out.extend_from_slice(&data[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::profile::DeviceProfile;

    fn redactor() -> Redactor {
        let profile = DeviceProfile::from_toml(
            "imei = \"490154203237518\"\nmac = \"02:1a:11:f0:3c:77\"\n",
            "test",
        )
        .unwrap();
        Redactor::new(KnownValueMatcher::new(&profile))
    }

    #[test]
    fn profile_values_are_masked_in_every_form() {
        let r = redactor();
        let text = "a?imei=490154203237518&m=021A11F03C77&b=x";
        assert_eq!(r.text(text, &[]), "a?imei=[imei]&m=[mac]&b=x");
    }

    #[test]
    fn reported_values_are_masked_wherever_they_occur() {
        let r = redactor();
        let reported = vec![("email".to_owned(), "a@b.cn".to_owned())];
        assert_eq!(
            r.text("to=a@b.cn; cc=a@b.cn", &reported),
            "to=[email]; cc=[email]"
        );
    }

    #[test]
    fn text_without_values_is_unchanged() {
        let r = redactor();
        assert_eq!(r.text("nothing 12345 here", &[]), "nothing 12345 here");
    }

    #[test]
    fn overlapping_spans_mask_once() {
        let masked = mask(b"0123456789", vec![(2, 6, "a".into()), (4, 8, "b".into())]);
        assert_eq!(masked, b"01[a]89");
    }
}
