//! Consent phases: *when* personal data left the device.
//!
//! A session starts in [`ConsentPhase::PreConsent`]: the app was just
//! launched and its privacy dialog is on screen. The tester moves the
//! session to `consented`, `refused` or `background` (and back) as the test
//! proceeds — from a key in the terminal, `leakscope mark PHASE`, or the
//! control API. Every flow takes the phase that was current when its
//! request started, and so does every finding in it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use time::OffsetDateTime;

/// Where the session stands with respect to the user's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentPhase {
    /// The privacy policy has not been accepted yet.
    PreConsent,
    /// The user accepted the privacy policy.
    Consented,
    /// The user declined (or withdrew consent).
    Refused,
    /// The app is in the background.
    Background,
}

impl ConsentPhase {
    pub const ALL: [ConsentPhase; 4] = [
        ConsentPhase::PreConsent,
        ConsentPhase::Consented,
        ConsentPhase::Refused,
        ConsentPhase::Background,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ConsentPhase::PreConsent => "pre-consent",
            ConsentPhase::Consented => "consented",
            ConsentPhase::Refused => "refused",
            ConsentPhase::Background => "background",
        }
    }
}

impl fmt::Display for ConsentPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ConsentPhase {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        ConsentPhase::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| {
                format!("unknown phase {text:?}; use one of: pre-consent, consented, refused, background")
            })
    }
}

/// One switch of phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhaseChange {
    pub phase: ConsentPhase,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// The session's current phase, shared by the proxy, the terminal keys and
/// the control API. Cheap to clone.
#[derive(Clone)]
pub struct PhaseClock {
    current: Arc<RwLock<PhaseChange>>,
}

impl PhaseClock {
    /// A clock in `pre-consent`, starting now.
    pub fn new() -> PhaseClock {
        PhaseClock::starting_in(ConsentPhase::PreConsent)
    }

    pub fn starting_in(phase: ConsentPhase) -> PhaseClock {
        let start = PhaseChange {
            phase,
            since: OffsetDateTime::now_utc(),
        };
        PhaseClock {
            current: Arc::new(RwLock::new(start)),
        }
    }

    pub fn current(&self) -> PhaseChange {
        *self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Switches to `phase`. Returns the change, or `None` when the session
    /// was already in that phase (nothing to announce).
    pub fn switch(&self, phase: ConsentPhase) -> Option<PhaseChange> {
        self.switch_at(phase, OffsetDateTime::now_utc())
    }

    /// Switches to `phase` as of `since`: offline scans replay the phase
    /// timeline of a capture made earlier.
    pub fn switch_at(&self, phase: ConsentPhase, since: OffsetDateTime) -> Option<PhaseChange> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.phase == phase {
            return None;
        }
        *current = PhaseChange { phase, since };
        Some(*current)
    }
}

impl Default for PhaseClock {
    fn default() -> Self {
        PhaseClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_choices() {
        for phase in ConsentPhase::ALL {
            assert_eq!(phase.name().parse::<ConsentPhase>(), Ok(phase));
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.name()));
        }
        assert_eq!("Pre_Consent".parse(), Ok(ConsentPhase::PreConsent));
        assert!(
            "agreed"
                .parse::<ConsentPhase>()
                .unwrap_err()
                .contains("consented")
        );
    }

    #[test]
    fn switching_to_the_same_phase_announces_nothing() {
        let clock = PhaseClock::new();
        assert_eq!(clock.current().phase, ConsentPhase::PreConsent);
        assert!(clock.switch(ConsentPhase::PreConsent).is_none());
        let change = clock.switch(ConsentPhase::Consented).unwrap();
        assert_eq!(change.phase, ConsentPhase::Consented);
        assert_eq!(clock.current(), change);
    }
}
