//! Sinks: where session events end up.

pub mod findings;
pub mod flow_log;
pub mod har;
pub mod har_body;
pub mod har_model;
pub mod line_log;
pub mod session_info;
pub mod terminal;
