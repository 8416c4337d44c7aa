//! `labctl output`: ids, fingerprints and key files for the lab guide.

use crate::cli::{OutputArgs, OutputFormat};
use crate::error::{Error, Exit};
use crate::keys::KeyStore;

use super::session::session;
use super::{Terminal, write_stdout};

pub(super) fn output_command(args: &OutputArgs, term: Terminal) -> Result<Exit, Error> {
    let format = if args.cloud.json {
        OutputFormat::Json
    } else {
        args.format
    };
    session(
        &args.cloud,
        term,
        None,
        async |_cloud, desired, observed, run| {
            let rows = crate::output::rows(&desired, &observed, KeyStore);
            let text = match format {
                OutputFormat::Text => crate::output::text(&rows),
                OutputFormat::Json => crate::output::json(&desired.project, &rows),
                OutputFormat::Env => crate::output::env(&desired, &rows).map_err(Error::Usage)?,
            };
            if format == OutputFormat::Json {
                super::write_json(&text, &run.warnings)?;
            } else {
                write_stdout(&text)?;
            }
            let missing = rows.iter().any(|r| r.id.is_none());
            if missing && !args.cloud.quiet && !args.cloud.json {
                eprintln!("Some key pairs do not exist yet; run `labctl apply`.");
            }
            Ok(Exit::Success)
        },
    )
}
