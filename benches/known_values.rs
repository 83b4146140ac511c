//! Throughput of the known-value search (being written).

fn main() {}
