//! The findings contract: one JSON object per finding.
//!
//! A finding says that identifier X left the device (or came back from a
//! server) in flow F, in place W, encoded as E, in consent phase P, to
//! party Q, and which rules that breaks. `docs/findings.md` documents every
//! field; this type is the single source of that shape. One finding exists
//! per (flow, identifier, where): a value seen in several encodings in one
//! body is one finding naming the strongest encoding.

use super::Confidence;
use super::secret::Secret;
use crate::consent::ConsentPhase;
use crate::flow::FlowId;
use serde::Serialize;
use time::OffsetDateTime;

/// The SDK that received data, as findings name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SdkInfo {
    pub name: String,
    pub vendor: String,
    /// The SDK's primary category (`analytics`, `advertising`, ...).
    pub category: String,
}

/// Which detector produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// A key or parameter named after an identifier.
    Key,
    /// An identifier-shaped value that passed validation.
    Pattern,
    /// The device profile's real value, in some encoding.
    Profile,
}

/// Who received the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// The app's own backend (`--app-domains`).
    First,
    /// Anyone else; `sdk` says which SDK when the catalogue knows the host.
    Third,
}

/// A rule the finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Violation {
    /// Personal data sent before the user consented.
    PreConsent,
    /// Personal data sent after the user refused.
    AfterRefusal,
    /// Personal data sent to a third-party SDK.
    ThirdParty,
    /// Sent to an SDK missing from the app's declared SDK list.
    UndeclaredSdk,
    /// The same identifier sent to the same recipient more often than the
    /// configured rate.
    OverFrequency,
}

impl Violation {
    pub fn name(self) -> &'static str {
        match self {
            Violation::PreConsent => "pre-consent",
            Violation::AfterRefusal => "after-refusal",
            Violation::ThirdParty => "third-party",
            Violation::UndeclaredSdk => "undeclared-sdk",
            Violation::OverFrequency => "over-frequency",
        }
    }
}

/// One finding. Field order is the order of `findings.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub flow_id: FlowId,
    pub phase: ConsentPhase,
    pub url: String,
    pub host: String,
    pub method: String,
    /// `url`, `header:<name>`, `cookie`, `body`, `ws`, `ws-response` or
    /// `response-body`.
    #[serde(rename = "where")]
    pub place: String,
    /// A profile key (`imei`, `mac`, `location`, `installed_apps`...) or
    /// `custom:<name>`.
    pub identifier: String,
    /// How the value was transformed (`plain`, `upper`, `url`, `base64`,
    /// `md5`...).
    pub encoding: String,
    /// Containers undone to reach the value, outermost first.
    pub decoded_from: Vec<String>,
    pub detector: DetectorKind,
    pub confidence: Confidence,
    pub party: Party,
    pub sdk: Option<SdkInfo>,
    pub violations: Vec<Violation>,
    /// A short excerpt around the match (value masked under `--redact`).
    pub evidence: String,
    /// The matched text when the detector reported one; never written out,
    /// only used to mask the value in the flow record under `--redact`.
    #[serde(skip)]
    pub value: Option<Secret>,
}

impl Finding {
    /// True when the data went from the device towards a server (as
    /// opposed to a server handing it back).
    pub fn is_outgoing(&self) -> bool {
        self.place != "response-body" && self.place != "ws-response"
    }
}

/// How the inspector labelled a flow when its request started: the same
/// phase, party and SDK every finding of the flow carries. Sent once per
/// inspected flow, before any of its findings.
#[derive(Debug, Clone, Serialize)]
pub struct FlowLabels {
    pub flow_id: FlowId,
    pub phase: ConsentPhase,
    pub party: Party,
    pub sdk: Option<SdkInfo>,
}
