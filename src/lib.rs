//! leakscope: a privacy monitor for mobile apps.
//!
//! Data moves in one direction only:
//! proxy ([`proxy`]) → flow record ([`flow`]) → observers → session events
//! ([`session`]) → sinks ([`sinks`]). No module reaches back up that chain:
//! sinks never call into the proxy, and the flow record knows nothing about
//! hudsucker or hyper.

pub mod android;
pub mod app;
pub mod ca;
pub mod cli;
pub mod consent;
pub mod control;
pub mod detect;
pub mod flow;
pub mod logging;
pub mod memory;
pub mod phase_keys;
pub mod pipeline;
pub mod proxy;
pub mod redact;
pub mod report;
pub mod scan;
pub mod session;
pub mod sinks;
