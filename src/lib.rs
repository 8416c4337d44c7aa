//! labctl provisions EC2 key pairs for labs and workshops from a YAML manifest.
//!
//! The pipeline is the architecture: `manifest` reads the YAML (the only code that knows it),
//! `validate` turns it into a fully resolved [`desired::Desired`] or every diagnostic,
//! `observe` reads each region (one `DescribeKeyPairs` per region) and each key file,
//! `plan` is a pure function of desired and observed, `apply` carries the plan out through
//! the [`cloud::Cloud`] trait and the [`keys::FileCustody`], and `render` shows plans and reports
//! to people or as JSON. `commands` wires the pipeline to the command line.

pub(crate) mod apply;
pub(crate) mod cli;
pub(crate) mod cloud;
mod commands;
pub mod desired;
pub mod diagnostic;
pub mod error;
pub(crate) mod handout;
pub(crate) mod journal;
pub mod keys;
pub(crate) mod lock;
pub mod manifest;
pub(crate) mod observe;
pub(crate) mod observe_store;
pub(crate) mod output;
pub(crate) mod ownership;
pub(crate) mod plan;
pub(crate) mod render;
pub(crate) mod report;
pub mod resource;
pub(crate) mod schema;
pub(crate) mod shared;
pub(crate) mod stop;
pub(crate) mod template;
pub mod validate;

pub use commands::main_with_args;
pub use shared::learn_local_offset;
