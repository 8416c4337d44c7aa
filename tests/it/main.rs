//! labctl's integration tests: one binary, the real program, a real local EC2 server.

// Test code builds manifests and inputs with `format!` freely; clarity beats micro-efficiency.
#![allow(
    clippy::format_push_string,
    clippy::format_collect,
    clippy::cast_possible_truncation,
    clippy::similar_names
)]

mod accounts;
mod agree;
mod agreement;
mod apply;
mod custody;
mod faults;
mod handout;
mod lifecycle;
mod properties;
mod regime;
mod release;
mod reliability;
mod soak;
mod support;
mod team;
mod validate;
mod workshop;
