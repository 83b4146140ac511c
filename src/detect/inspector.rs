//! The privacy inspector: detectors attached to every flow.
//!
//! For each HTTP or WebSocket flow it scans the URL and request headers as
//! soon as the request head is known, streams both bodies through a
//! [`MessageScan`] as they pass, scans each WebSocket message, and turns
//! what it finds into [`Finding`]s sent to the sinks at the end of each
//! message — before the flow itself completes, so evidence reaches disk
//! while a long response is still streaming.

use super::finding::{Finding, FlowLabels, Party};
use super::keys::KeyScanner;
use super::known::KnownValueMatcher;
use super::patterns::PatternScanner;
use super::profile::{DeviceProfile, ProfileError};
use super::rules::{RuleError, RuleSet};
use super::scan::{Detectors, Hit, MessageScan, ScanLimits, sniff_container};
use super::sdk::{CatalogueError, SdkCatalogue, SdkInfo};
use super::verdict::{FrequencyLimit, Verdicts};
use crate::consent::{ConsentPhase, PhaseClock};
use crate::flow::decode::parse_content_encoding;
use crate::flow::{Direction, Flow, Header};
use crate::pipeline::{FlowTap, Inspector};
use crate::session::{SessionEvent, SessionTx};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What the privacy inspector is built from (the `run`/`scan` options).
#[derive(Debug, Clone, Default)]
pub struct PrivacySettings {
    /// The test device's identifiers (`--profile`).
    pub profile: Option<PathBuf>,
    /// Extra rule and catalogue files (`--detectors DIR`, repeatable).
    pub detector_dirs: Vec<PathBuf>,
    /// The app's own backends (`--app-domains`).
    pub app_domains: Vec<String>,
    /// The app's declared SDK list (`--declared-sdks`).
    pub declared_sdks: Option<PathBuf>,
    pub max_rate: FrequencyLimit,
    pub scan: ScanLimits,
    pub redact: bool,
}

/// Why the detectors could not be set up. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error("{0}")]
    DeclaredSdks(String),
}

/// Detectors and rules loaded and compiled, waiting for a session.
pub struct CompiledPrivacy {
    /// Set under `--redact`: masks values in flow records for the sinks.
    pub redactor: Option<crate::redact::Redactor>,
    detectors: Detectors,
    catalogue: SdkCatalogue,
    verdicts: Verdicts,
    app_domains: Vec<String>,
}

impl CompiledPrivacy {
    /// The inspector for a session whose phases are `phases` and whose
    /// events go to `tx`.
    pub fn inspector(self, phases: PhaseClock, tx: SessionTx) -> PrivacyInspector {
        PrivacyInspector::new(
            self.detectors,
            self.catalogue,
            self.verdicts,
            phases,
            self.app_domains,
            tx,
        )
    }
}

impl PrivacySettings {
    /// The device model and app package named in the profile, if any.
    pub fn device(&self) -> Result<(Option<String>, Option<String>), SetupError> {
        let Some(path) = &self.profile else {
            return Ok((None, None));
        };
        let profile = DeviceProfile::load(path)?;
        Ok((
            profile.model().map(str::to_owned),
            profile.app().map(str::to_owned),
        ))
    }

    /// Loads the profile, rules, catalogue and declared list, and compiles
    /// the detectors. Every error names the file at fault.
    pub fn compile(&self) -> Result<CompiledPrivacy, SetupError> {
        let profile = match &self.profile {
            Some(path) => DeviceProfile::load(path)?,
            None => DeviceProfile::default(),
        };
        let rules = RuleSet::load(&self.detector_dirs)?;
        let catalogue = SdkCatalogue::load(&self.detector_dirs)?;
        let declared = self
            .declared_sdks
            .as_deref()
            .map(Verdicts::read_declared)
            .transpose()
            .map_err(SetupError::DeclaredSdks)?;
        let detectors = Detectors {
            known: KnownValueMatcher::new(&profile),
            patterns: PatternScanner::new(&rules),
            keys: KeyScanner::new(&rules),
            limits: self.scan,
            redact: self.redact,
        };
        let verdicts = Verdicts::new(declared, self.max_rate);
        let redactor = self
            .redact
            .then(|| crate::redact::Redactor::new(KnownValueMatcher::new(&profile)));
        Ok(CompiledPrivacy {
            redactor,
            detectors,
            catalogue,
            verdicts,
            app_domains: self.app_domains.clone(),
        })
    }
}

/// Everything the inspector needs, shared by all flows of a session.
pub struct PrivacyInspector {
    shared: Arc<Shared>,
}

struct Shared {
    detectors: &'static Detectors,
    catalogue: SdkCatalogue,
    verdicts: Verdicts,
    phases: PhaseClock,
    /// The app's own domains (`--app-domains`), lowercase.
    app_domains: Vec<String>,
    tx: SessionTx,
}

impl PrivacyInspector {
    /// `detectors` are leaked on purpose: they are compiled once per session
    /// and every in-flight scan borrows them for its whole life.
    pub fn new(
        detectors: Detectors,
        catalogue: SdkCatalogue,
        verdicts: Verdicts,
        phases: PhaseClock,
        app_domains: Vec<String>,
        tx: SessionTx,
    ) -> PrivacyInspector {
        let app_domains = app_domains.iter().map(|d| normalise_host(d)).collect();
        PrivacyInspector {
            shared: Arc::new(Shared {
                detectors: Box::leak(Box::new(detectors)),
                catalogue,
                verdicts,
                phases,
                app_domains,
                tx,
            }),
        }
    }
}

impl Inspector for PrivacyInspector {
    fn open(&self, flow: &Flow) -> Option<Box<dyn FlowTap>> {
        let request = flow.request.as_ref()?;
        let host = normalise_host(&request.host);
        let path = path_and_query(&request.url);
        let party = if self.shared.app_domains.iter().any(|d| is_within(&host, d)) {
            Party::First
        } else {
            Party::Third
        };
        let sdk = self.shared.catalogue.lookup(&host, path).map(|s| s.info());
        let recipient = sdk
            .as_ref()
            .map_or_else(|| host.clone(), |s| s.name.clone());
        let mut tap = PrivacyTap {
            shared: self.shared.clone(),
            ctx: FlowContext {
                flow_id: flow.id,
                phase: self.shared.phases.current().phase,
                url: request.url.clone(),
                host,
                method: request.method.clone(),
                party,
                sdk,
                recipient,
            },
            request_chain: body_chain(&request.headers),
            response_chain: Vec::new(),
            request: None,
            response: None,
            reported: HashSet::new(),
            media: [is_media(&request.headers), false],
        };
        let labels = FlowLabels {
            flow_id: flow.id,
            phase: tap.ctx.phase,
            party: tap.ctx.party,
            sdk: tap.ctx.sdk.clone(),
        };
        self.shared
            .tx
            .send(SessionEvent::FlowLabels(Arc::new(labels)));
        tap.scan_head(&request.url, &request.headers);
        Some(Box::new(tap))
    }
}

/// What every finding of one flow shares.
struct FlowContext {
    flow_id: u64,
    phase: ConsentPhase,
    url: String,
    host: String,
    method: String,
    party: Party,
    sdk: Option<SdkInfo>,
    recipient: String,
}

struct PrivacyTap {
    shared: Arc<Shared>,
    ctx: FlowContext,
    request_chain: Vec<String>,
    response_chain: Vec<String>,
    request: Option<MessageScan<'static>>,
    response: Option<MessageScan<'static>>,
    /// (identifier, where) pairs already reported for this flow.
    reported: HashSet<(String, String)>,
    /// Per direction: the body is an image, audio, video or font, whose
    /// bytes are not text an identifier could be written in.
    media: [bool; 2],
}

/// Headers that carry protocol mechanics, never personal data worth a scan.
const SKIPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "upgrade",
    "te",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
];

impl PrivacyTap {
    fn scan_head(&mut self, url: &str, headers: &[Header]) {
        let detectors = self.shared.detectors;
        let hits = MessageScan::scan_all(detectors, Vec::new(), url.as_bytes());
        self.report(hits, "url");
        for header in headers {
            let name = header.name.to_ascii_lowercase();
            if SKIPPED_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let line = format!("{}: {}", header.name, header.value);
            let hits = MessageScan::scan_all(detectors, Vec::new(), line.as_bytes());
            let place = if name == "cookie" {
                "cookie".to_owned()
            } else {
                format!("header:{name}")
            };
            self.report(hits, &place);
        }
    }

    fn scan_for(&mut self, direction: Direction) -> &mut Option<MessageScan<'static>> {
        match direction {
            Direction::Upstream => &mut self.request,
            Direction::Downstream => &mut self.response,
        }
    }

    fn close(&mut self, direction: Direction) {
        if let Some(scan) = self.scan_for(direction).take() {
            let place = match direction {
                Direction::Upstream => "body",
                Direction::Downstream => "response-body",
            };
            self.report(scan.finish(), place);
        }
    }

    fn report(&mut self, hits: Vec<Hit>, place: &str) {
        for hit in hits {
            if !self
                .reported
                .insert((hit.identifier.clone(), place.to_owned()))
            {
                continue;
            }
            let finding = self.finding(hit, place);
            self.shared
                .tx
                .send(SessionEvent::Finding(Arc::new(finding)));
        }
    }

    fn finding(&self, hit: Hit, place: &str) -> Finding {
        let ctx = &self.ctx;
        let mut finding = Finding {
            ts: time::OffsetDateTime::now_utc(),
            flow_id: ctx.flow_id,
            phase: ctx.phase,
            url: ctx.url.clone(),
            host: ctx.host.clone(),
            method: ctx.method.clone(),
            place: place.to_owned(),
            identifier: hit.identifier,
            encoding: hit.encoding,
            decoded_from: hit.chain,
            detector: hit.detector,
            confidence: hit.confidence,
            party: ctx.party,
            sdk: ctx.sdk.clone(),
            violations: Vec::new(),
            evidence: hit.evidence,
            value: hit.value,
        };
        finding.violations = self
            .shared
            .verdicts
            .judge(&finding, &ctx.recipient, Instant::now());
        finding
    }
}

impl FlowTap for PrivacyTap {
    fn body(&mut self, direction: Direction, decoded: &[u8]) {
        let detectors = self.shared.detectors;
        if self.media[direction as usize] {
            return;
        }
        if self.scan_for(direction).is_none() {
            let mut chain = match direction {
                Direction::Upstream => self.request_chain.clone(),
                Direction::Downstream => self.response_chain.clone(),
            };
            // No content type to go by: name the container from its start.
            if !chain
                .iter()
                .any(|c| matches!(c.as_str(), "json" | "form" | "multipart"))
            {
                chain.extend(sniff_container(decoded).map(str::to_owned));
            }
            *self.scan_for(direction) = Some(MessageScan::body(detectors, chain));
        }
        if let Some(scan) = self.scan_for(direction) {
            scan.feed(decoded);
        }
    }

    fn body_not_encoded(&mut self, direction: Direction) {
        // The labelled codings were not undone: findings must not claim
        // them in `decoded_from`.
        let chain = match direction {
            Direction::Upstream => &mut self.request_chain,
            Direction::Downstream => &mut self.response_chain,
        };
        chain.retain(|c| parse_content_encoding(c).is_err());
    }

    fn body_end(&mut self, direction: Direction) {
        self.close(direction);
    }

    fn response_head(&mut self, flow: &Flow) {
        if let Some(response) = &flow.response {
            self.response_chain = body_chain(&response.headers);
            self.media[Direction::Downstream as usize] = is_media(&response.headers);
        }
    }

    fn ws_message(&mut self, direction: Direction, payload: &[u8]) {
        let chain = sniff_container(payload)
            .map(str::to_owned)
            .into_iter()
            .collect();
        let hits = MessageScan::scan_all(self.shared.detectors, chain, payload);
        let place = match direction {
            Direction::Upstream => "ws",
            Direction::Downstream => "ws-response",
        };
        self.report(hits, place);
    }

    fn end(&mut self, _flow: &Flow) {
        // Bodies that broke off still had their bytes scanned.
        self.close(Direction::Upstream);
        self.close(Direction::Downstream);
    }
}

/// Containers a body arrives in: its content codings, then its type.
fn body_chain(headers: &[Header]) -> Vec<String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.to_ascii_lowercase())
    };
    let mut chain: Vec<String> = header("content-encoding")
        .and_then(|v| parse_content_encoding(&v).ok())
        .map(|codings| codings.iter().map(|c| c.name().to_owned()).collect())
        .unwrap_or_default();
    if let Some(kind) = header("content-type")
        .as_deref()
        .and_then(container_of_type)
    {
        chain.push(kind.to_owned());
    }
    chain
}

/// Media bodies are relayed and recorded but not scanned: scanning
/// megabytes of compressed pixels costs CPU and finds only noise.
fn is_media(headers: &[Header]) -> bool {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .is_some_and(|h| {
            let t = h.value.trim_start().to_ascii_lowercase();
            ["image/", "video/", "audio/", "font/"]
                .iter()
                .any(|m| t.starts_with(m))
        })
}

fn container_of_type(content_type: &str) -> Option<&'static str> {
    if content_type.contains("json") {
        Some("json")
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Some("form")
    } else if content_type.starts_with("multipart/") {
        Some("multipart")
    } else {
        None
    }
}

fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// True when `host` is `domain` or one of its subdomains.
fn is_within(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn path_and_query(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_domains_match_whole_labels() {
        assert!(is_within("api.example.com", "example.com"));
        assert!(is_within("example.com", "example.com"));
        assert!(!is_within("notexample.com", "example.com"));
    }

    #[test]
    fn body_chain_names_codings_then_container() {
        let headers = vec![
            Header {
                name: "Content-Encoding".into(),
                value: "gzip".into(),
            },
            Header {
                name: "Content-Type".into(),
                value: "application/json; charset=utf-8".into(),
            },
        ];
        assert_eq!(body_chain(&headers), vec!["gzip", "json"]);
        assert_eq!(path_and_query("https://h.com:8443/a/b?c=1"), "/a/b?c=1");
        assert_eq!(path_and_query("http://h.com"), "/");
    }
}
