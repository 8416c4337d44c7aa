//! `labctl output`: ids, fingerprints and key files for the lab guide.

use crate::cli::{OutputArgs, OutputFormat};
use crate::error::{Error, Exit};
use crate::keys::FileCustody;

use super::session::{Aws, Connect, NoNetwork, session};
use super::{Terminal, write_stdout};

pub(super) fn output_command(args: &OutputArgs, term: Terminal) -> Result<Exit, Error> {
    if args.offline {
        output_in(&NoNetwork, args, term)
    } else {
        output_in(&Aws, args, term)
    }
}

/// `output` through any cloud: EC2, or none at all (`--offline`).
fn output_in<K: Connect>(connector: &K, args: &OutputArgs, term: Terminal) -> Result<Exit, Error> {
    let format = if args.cloud.json {
        OutputFormat::Json
    } else {
        args.format
    };
    session(
        connector,
        &args.cloud,
        term,
        None,
        async |_cloud, desired, observed, run| {
            let rows = crate::output::rows(&desired, &observed, FileCustody);
            match format {
                OutputFormat::Text => write_stdout(&crate::output::text(&rows))?,
                OutputFormat::Wide => write_stdout(&crate::output::wide(&rows))?,
                OutputFormat::Json => {
                    let doc = crate::output::json(&desired.project, &rows);
                    super::write_json(doc, &run.warnings)?;
                }
                OutputFormat::Env => {
                    write_stdout(&crate::output::env(&desired, &rows).map_err(Error::Usage)?)?;
                }
            }
            let missing = rows.iter().any(|r| r.id.is_none());
            if missing && !args.offline && args.cloud.says_status() {
                eprintln!("Some key pairs do not exist yet; run `labctl apply`.");
            }
            Ok(Exit::Success)
        },
    )
}
