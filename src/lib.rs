//! labctl provisions EC2 key pairs for labs and workshops from a YAML manifest.
//!
//! The pipeline is the architecture: `manifest` reads the YAML (the only code that knows it),
//! `validate` turns it into a fully resolved [`desired::Desired`] or every diagnostic,
//! `observe` reads each region (one `DescribeKeyPairs` per region) and each key file,
//! `plan` is a pure function of desired and observed, `apply` carries the plan out through
//! the [`cloud::Cloud`] trait and the [`keys::KeyStore`], and `render` shows plans and reports
//! to people or as JSON. `commands` wires the pipeline to the command line.

pub mod apply;
pub mod cli;
pub mod cloud;
mod commands;
pub mod desired;
pub mod diagnostic;
pub mod error;
pub mod journal;
pub mod keys;
pub mod lock;
pub mod manifest;
pub mod observe;
pub mod output;
pub mod ownership;
pub mod plan;
pub mod render;
pub mod schema;
pub mod template;
pub mod validate;

pub use commands::main_with_args;
