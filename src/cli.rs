//! Command-line definitions (clap derive) and nothing else: parsing touches no system state.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Provision EC2 key pairs for labs and workshops from a YAML manifest: idempotent, with
/// private keys saved 0400 and never printed.
#[derive(Debug, Parser)]
#[command(
    name = "labctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check manifests offline and explain every mistake (no network, no file written)
    Validate(ValidateArgs),
    /// Print the JSON Schema of the manifest format (draft-07, for editors)
    Schema,
    /// Show what apply would change
    Plan(PlanArgs),
    /// Create, import and fix key pairs until the cloud and the key files match the manifest
    Apply(ApplyArgs),
    /// Delete the key pairs this manifest owns (asks first on a terminal)
    Destroy(DestroyArgs),
    /// Show each key pair's id, fingerprints and key file, as text, JSON or shell variables
    Output(OutputArgs),
}

/// Whether to pace requests at EC2's rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Pace {
    /// At EC2's published rates, whatever the endpoint, slowing down when EC2 throttles
    #[value(alias = "auto")]
    Ec2,
    /// Never (a local test server in a benchmark)
    None,
}

fn parse_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.1..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a factor from 0.1 to 100")),
    }
}

/// A `--var KEY=VALUE` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Var {
    pub key: String,
    pub value: String,
}

fn parse_var(text: &str) -> Result<Var, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    crate::template::check_user_variable(key)?;
    Ok(Var {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Manifest files to check
    #[arg(value_name = "MANIFEST", default_value = "labctl.yaml")]
    pub manifests: Vec<PathBuf>,
    /// Override a manifest variable (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<Var>,
    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Options shared by every command that reads a manifest and talks to AWS.
#[derive(Debug, Args)]
pub(crate) struct CloudArgs {
    /// The manifest
    #[arg(value_name = "MANIFEST", default_value = "labctl.yaml")]
    pub manifest: PathBuf,
    /// Override a manifest variable (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<Var>,
    /// Send EC2 requests to this endpoint (e.g. a local test server)
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// The AWS profile to use
    #[arg(long, value_name = "NAME", env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Print the plan or report as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// At most this many key pairs worked on at once
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Pace requests at EC2's published rates per region and action, slowing down when EC2
    /// throttles (`ec2`, whatever the endpoint), or not at all (`none`)
    #[arg(long, value_enum, default_value_t = Pace::Ec2)]
    pub pace: Pace,
    /// Your account's EC2 API rate limits as a multiple of EC2's published defaults (raised
    /// limits: 2 means twice the burst and refill of every bucket)
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, value_parser = parse_scale)]
    pub pace_scale: f64,
    /// Give up after this many seconds: nothing new starts after it, requests in flight finish
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Attempts per EC2 request for real errors (timeouts, cut connections, server errors), the
    /// first included; throttling is retried until --timeout and never counts
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
    /// Print less (errors only)
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more (repeat for more detail)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Exit 2 when there are changes to apply (0: none, 1: error or conflict)
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// `--replace NAME[@REGION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplaceTarget {
    pub name: String,
    pub region: Option<String>,
}

fn parse_replace(text: &str) -> Result<ReplaceTarget, String> {
    let (name, region) = match text.rsplit_once('@') {
        Some((name, region)) => (name, Some(region.to_owned())),
        None => (text, None),
    };
    if name.is_empty() {
        return Err("give the key pair's name: NAME or NAME@REGION".to_owned());
    }
    Ok(ReplaceTarget {
        name: name.to_owned(),
        region,
    })
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Delete key pairs this manifest owns (tag labctl:project) but no longer lists
    #[arg(long)]
    pub prune: bool,
    /// With --prune: also delete the orphans' key files (only a file holding that very key,
    /// and never one an entry of the manifest uses)
    #[arg(long, requires = "prune")]
    pub purge_local: bool,
    /// With --prune: do not ask before deleting (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Delete and recreate this key pair (owned by this manifest only); its old key file is
    /// moved aside to <file>.replaced-<timestamp>. Repeatable.
    #[arg(long, value_name = "NAME[@REGION]", value_parser = parse_replace)]
    pub replace: Vec<ReplaceTarget>,
}

#[derive(Debug, Args)]
pub(crate) struct DestroyArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Remove the key files of the deleted key pairs (by default they are retired: moved
    /// aside to <file>.retired-<timestamp>, so the next apply makes new keys)
    #[arg(long, conflicts_with = "keep_local")]
    pub purge_local: bool,
    /// Leave the key files in place: the next apply imports them again (the same keys)
    #[arg(long)]
    pub keep_local: bool,
}

/// How `labctl output` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// A table for people
    Text,
    /// One JSON document
    Json,
    /// Shell assignments for `eval "$(labctl output --format env)"`
    Env,
}

#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, conflicts_with = "json")]
    pub format: OutputFormat,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn vars_must_be_key_value() {
        assert!(super::parse_var("owner=me").is_ok());
        assert_eq!(super::parse_var("a=b=c").unwrap().value, "b=c");
        assert!(super::parse_var("owner").is_err());
        assert!(super::parse_var("=x").is_err());
        assert!(super::parse_var("project=x").is_err());
    }
}
