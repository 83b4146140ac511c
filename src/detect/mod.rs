//! Privacy detectors: from decoded flow data to findings.
//!
//! Three kinds of detector run over every message a flow carries (URL,
//! headers, bodies, WebSocket messages), all streaming:
//! - [`known`]: the test device's real identifiers in every form apps send
//!   them (highest confidence);
//! - [`patterns`]: identifier-shaped values that pass validation;
//! - [`keys`]: keys and parameters that name an identifier.
//!
//! [`sdk`] says who received the data. The rules are data
//! (`detectors/*.toml`), loaded by [`rules`] and [`sdk`].

mod classify;
mod cpu;
pub mod expand;
pub mod finding;
pub mod inspector;
pub mod keys;
pub mod known;
pub mod patterns;
mod percent;
pub mod profile;
mod recent;
pub mod rules;
pub mod scan;
pub mod sdk;
pub mod secret;
mod seen;
mod spares;
pub mod validate;
pub mod verdict;

use serde::Serialize;

/// How sure a detector is that a match is the identifier it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}
