//! Sinks: where session events end up.

pub mod terminal;
pub mod flow_log;
pub mod findings;
pub mod har;
pub mod har_model;
