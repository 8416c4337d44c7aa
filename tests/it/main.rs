//! labctl's integration tests: one binary, the real program, a real local EC2 server.

mod apply;
mod support;
mod validate;
