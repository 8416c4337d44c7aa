//! Command-line definitions (clap derive) and nothing else: parsing touches no system state.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Provision EC2 key pairs for labs and workshops from a YAML manifest: idempotent, with
/// private keys saved 0400 and never printed.
#[derive(Debug, Parser)]
#[command(
    name = "labctl",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LABCTL_COMMIT"), ")"),
    propagate_version = true,
    max_term_width = 100,
    after_help = "The manifest is labctl.yaml (or labctl.yml) in the current folder or the nearest parent, up to the git repository's root; -f names another, -C starts elsewhere.\nStart one with `labctl init`."
)]
pub(crate) struct Cli {
    /// Run as if started in DIR (the manifest is looked for there)
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub directory: Option<PathBuf>,
    /// The manifest (default: labctl.yaml or labctl.yml here or in a parent folder)
    #[arg(short = 'f', long = "file", value_name = "FILE", global = true)]
    pub file: Option<PathBuf>,
    /// When to use colors: auto (a terminal, unless `NO_COLOR` is set; `CLICOLOR_FORCE` forces
    /// them), always, never
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write a commented starter manifest (labctl.yaml) that validates
    #[command(
        after_help = "Examples:\n  labctl init\n  labctl init --project k8s-101 --region eu-west-1\n  labctl -C workshops/k8s init"
    )]
    Init(InitArgs),
    /// Check manifests offline and explain every mistake (no network, no file written)
    #[command(
        after_help = "Examples:\n  labctl validate\n  labctl validate workshops/*.yaml\n  labctl validate --json"
    )]
    Validate(ValidateArgs),
    /// Print the JSON Schema of the manifest format (draft-07, for editors)
    Schema,
    /// Show what apply would change, changing nothing
    #[command(
        after_help = "Examples:\n  labctl plan\n  labctl plan --prune\n  labctl plan --detailed-exitcode   # exit 2 when there are changes (CI)\n  labctl plan --json"
    )]
    Plan(PlanArgs),
    /// Create, import and fix key pairs until the cloud and the key files match the manifest
    #[command(
        after_help = "Examples:\n  labctl apply\n  labctl apply --prune            # asks before deleting\n  labctl apply --replace seat-07  # asks before deleting\n  labctl apply --prune --yes --json"
    )]
    Apply(ApplyArgs),
    /// Delete the key pairs this manifest owns (asks first on a terminal)
    #[command(after_help = "Examples:\n  labctl destroy\n  labctl destroy --yes --keep-local")]
    Destroy(DestroyArgs),
    /// Show each key pair's id, fingerprints and key file, as text, JSON or shell variables
    #[command(
        after_help = "Examples:\n  labctl output\n  labctl output --format json\n  eval \"$(labctl output --format env)\""
    )]
    Output(OutputArgs),
    /// Write one bundle per key pair for its attendee: the private key, `ssh_config`, `README.txt`
    #[command(
        after_help = "Examples:\n  labctl handout\n  labctl handout --zip --passphrase      # bundles that may travel over e-mail\n  labctl handout 'seat-*' --out /media/usb\n  labctl handout seat-07 --zip --passphrase --force  # after apply --replace, same flags\n  labctl handout --from-store            # on a machine without the key files (store: ssm)"
    )]
    Handout(HandoutArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(
        after_help = "Examples:\n  labctl completions bash > ~/.local/share/bash-completion/completions/labctl\n  labctl completions zsh > \"${fpath[1]}/_labctl\"\n  labctl completions fish > ~/.config/fish/completions/labctl.fish"
    )]
    Completions(CompletionsArgs),
    /// The key pair names of the manifest, one a line (what the completion scripts offer
    /// after `handout` and `--replace`); nothing when there is no valid manifest
    #[command(name = "__names", hide = true)]
    Names,
    /// Print the man page (roff) on stdout: labctl's, or one command's
    #[command(
        after_help = "Examples:\n  labctl man > ~/.local/share/man/man1/labctl.1\n  labctl man plan | man -l -\n  labctl man --dir ~/.local/share/man/man1"
    )]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The command whose page to print (`labctl-COMMAND(1)`; default: labctl's own)
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
    /// Write every page (labctl.1 and labctl-COMMAND.1 for each command) into DIR
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The project name (default: the folder's name)
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// The region of the key pairs (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the AWS
    /// profile's region, else us-east-1)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // command-line switches
pub(crate) struct HandoutArgs {
    /// Key pairs to hand out, by name or pattern (`*`, `?`); default: every key pair
    #[arg(value_name = "NAME")]
    pub selectors: Vec<String>,
    /// Where the bundles go (default: `handout/` beside the manifest, created 0700 and
    /// ignored by git)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// One zip file per key pair instead of a folder (for channels that take one file)
    #[arg(long)]
    pub zip: bool,
    /// Encrypt each bundle's private keys with its own random passphrase, listed in an
    /// owner-only `passphrases-TIME.csv` for the instructor (send it over another channel);
    /// each run's list holds every bundle of the run
    #[arg(long)]
    pub passphrase: bool,
    /// Print one seat's passphrase again (a seat label or key pair name), from the newest
    /// list; only on a terminal
    #[arg(long, value_name = "SEAT", conflicts_with_all = ["selectors", "zip", "passphrase", "force"])]
    pub show_passphrase: Option<String>,
    /// Replace a bundle whose key, formats or passphrase setting changed (the old one is
    /// moved aside)
    #[arg(long)]
    pub force: bool,
    /// Take the private keys from the team store (`store: ssm`) instead of the key files:
    /// each key pair's entry, used only when it holds the key the key pair has (reads EC2
    /// and SSM; no key file needed, none written)
    #[arg(long, conflicts_with = "show_passphrase")]
    pub from_store: bool,
    /// With --from-store: send EC2, STS and SSM requests to this endpoint; also
    /// `AWS_ENDPOINT_URL`
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL", hide_env = true, value_parser = parse_endpoint)]
    pub endpoint_url: Option<String>,
    /// With --from-store: the AWS profile to use; also `AWS_PROFILE`
    #[arg(long, value_name = "NAME", env = "AWS_PROFILE", hide_env = true)]
    pub profile: Option<String>,
    /// Override a manifest variable (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<Var>,
    /// Print the result as one JSON document
    #[arg(long)]
    pub json: bool,
    /// Print only problems
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(skip)]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// Manifest files to check (default: the manifest found as for every command)
    #[arg(value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Override a manifest variable (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<Var>,
    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Fail on warnings too, among them a key file that git would commit (for pre-commit
    /// hooks and CI)
    #[arg(long)]
    pub strict: bool,
}

/// Options shared by every command that reads a manifest and talks to AWS.
#[derive(Debug, Args)]
pub(crate) struct CloudArgs {
    /// The manifest (default: labctl.yaml or labctl.yml here or in a parent folder; also -f)
    #[arg(value_name = "MANIFEST")]
    pub manifest_arg: Option<PathBuf>,
    /// The manifest this command works on, resolved from MANIFEST, -f or the search.
    #[arg(skip)]
    pub manifest: PathBuf,
    /// Override a manifest variable (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<Var>,
    /// Send EC2, STS, SSM and S3 requests to this endpoint (a VPC endpoint, a proxy, a local
    /// test server); also `AWS_ENDPOINT_URL`
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL", hide_env = true, value_parser = parse_endpoint)]
    pub endpoint_url: Option<String>,
    /// The AWS profile to use; also `AWS_PROFILE`
    #[arg(long, value_name = "NAME", env = "AWS_PROFILE", hide_env = true)]
    pub profile: Option<String>,
    /// Print one JSON document on stdout (errors included) and no progress
    #[arg(long)]
    pub json: bool,
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

impl CloudArgs {
    /// Whether status lines (progress, notes, "still waiting") go to stderr: not with `-q`,
    /// not with `--json`. The one place this is decided.
    pub(crate) fn says_status(&self) -> bool {
        !self.quiet && !self.json
    }
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    #[command(flatten)]
    pub changes: ChangeArgs,
    /// Exit 2 when there are changes to apply (0: none, 1: error or conflict)
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// What a plan may include beyond making the manifest true: the same for `plan` and `apply`,
/// so that `plan` previews exactly what `apply` would delete.
#[derive(Debug, Args)]
pub(crate) struct ChangeArgs {
    /// Delete key pairs this manifest owns (tag labctl:project) but no longer lists
    #[arg(long)]
    pub prune: bool,
    /// With --prune: also delete the orphans' key files (only a file holding that very key,
    /// and never one an entry of the manifest uses)
    #[arg(long, requires = "prune")]
    pub purge_local: bool,
    /// Delete and recreate this key pair (owned by this manifest only); its old key file is
    /// moved aside to <file>.replaced-<timestamp>. Repeatable. In another account:
    /// NAME@ACCOUNT/REGION (the account's name or id), or NAME@ACCOUNT.
    #[arg(long, value_name = "NAME[@[ACCOUNT/]REGION]", value_parser = parse_replace)]
    pub replace: Vec<ReplaceTarget>,
}

/// An endpoint URL must say its scheme: `localhost:5000` would be read as scheme `localhost`.
fn parse_endpoint(text: &str) -> Result<String, String> {
    match text.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() => Ok(text.to_owned()),
        Some((scheme, _)) => Err(format!(
            "`{text}`: the scheme must be http:// or https://, not {scheme}://"
        )),
        None => Err(format!(
            "`{text}` has no scheme; write https://{text} (or http:// for a local test server)"
        )),
    }
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
    #[command(flatten)]
    pub changes: ChangeArgs,
    /// Do not ask before deleting key pairs (--prune, --replace); required when stdin is not
    /// a terminal
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub work: WorkArgs,
}

/// Options of the commands that change things.
#[derive(Debug, Args)]
pub(crate) struct WorkArgs {
    /// At most this many key pairs worked on at once
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
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
    #[command(flatten)]
    pub work: WorkArgs,
}

/// How `labctl output` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// A compact table for people: name, region, key pair id (and the key file when they
    /// are not all `<folder>/<name>.pem`)
    Text,
    /// The table with the fingerprints EC2 shows and every key file
    Wide,
    /// One JSON document
    Json,
    /// Shell assignments for `eval "$(labctl output --format env)"`
    Env,
}

#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Output format (`--json` is `--format json`)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, conflicts_with = "json")]
    pub format: OutputFormat,
    /// Ask EC2 nothing: what the manifest and the key files know (names, regions, key files,
    /// the fingerprints EC2 shows); key pair ids are left out
    #[arg(long)]
    pub offline: bool,
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

    #[test]
    fn endpoints_must_name_their_scheme() {
        assert!(super::parse_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(super::parse_endpoint("https://ec2.example.com/").is_ok());
        let err = super::parse_endpoint("localhost:5000").unwrap_err();
        assert!(err.contains("has no scheme"), "{err}");
        assert!(
            super::parse_endpoint("ftp://x")
                .unwrap_err()
                .contains("ftp://")
        );
        assert!(super::parse_endpoint("http://").is_err());
    }
}

/// Let a command's flags come before the command too (`labctl --json plan`, `labctl -q
/// apply`), as people type them: flags given before the command name that are not the
/// top-level ones (`-C`, `-f`, `--color`, `--help`, `--version`) are moved right after it,
/// with their values. Which flags take a value is read from the definitions above, so a value
/// that looks like a command name (`--profile plan`) is never taken for one. Anything clap
/// would refuse is left for clap to refuse.
pub(crate) fn hoist_command_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let top_level = |name: &str| {
        cli.get_arguments().any(|a| {
            a.get_long().is_some_and(|l| name == format!("--{l}"))
                || a.get_short().is_some_and(|s| name == format!("-{s}"))
        }) || matches!(name, "-h" | "--help" | "-V" | "--version")
    };
    // Every flag of every command, and whether it takes a value.
    let mut takes_value = std::collections::BTreeMap::new();
    for arg in cli
        .get_arguments()
        .chain(cli.get_subcommands().flat_map(clap::Command::get_arguments))
    {
        let value = arg.get_action().takes_values();
        if let Some(long) = arg.get_long() {
            takes_value.insert(format!("--{long}"), value);
        }
        if let Some(short) = arg.get_short() {
            takes_value.insert(format!("-{short}"), value);
        }
    }
    let mut kept = Vec::new();
    let mut moved = Vec::new();
    let mut rest = args.into_iter();
    kept.extend(rest.next());
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str().map(ToOwned::to_owned) else {
            kept.push(arg);
            break;
        };
        if text == "--" || !text.starts_with('-') || text == "-" {
            // The command (or something clap will judge): what was moved goes after it.
            kept.push(arg);
            kept.append(&mut moved);
            kept.extend(rest);
            return kept;
        }
        let name = text.split_once('=').map_or(text.as_str(), |(n, _)| n);
        let value = !text.contains('=') && takes_value.get(name).copied().unwrap_or(false);
        let into = if top_level(name) {
            &mut kept
        } else {
            &mut moved
        };
        into.push(arg);
        if value && let Some(v) = rest.next() {
            into.push(v);
        }
    }
    // No command: leave everything as it was given.
    kept.append(&mut moved);
    kept
}

#[cfg(test)]
mod hoist_tests {
    use super::hoist_command_flags;

    fn hoist(args: &[&str]) -> Vec<String> {
        hoist_command_flags(args.iter().map(Into::into).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn flags_before_the_command_move_after_it_with_their_values() {
        assert_eq!(
            hoist(&["labctl", "--json", "plan"]),
            ["labctl", "plan", "--json"]
        );
        assert_eq!(
            hoist(&[
                "labctl",
                "-q",
                "--profile",
                "plan",
                "-C",
                "w",
                "apply",
                "--yes"
            ]),
            [
                "labctl",
                "-C",
                "w",
                "apply",
                "-q",
                "--profile",
                "plan",
                "--yes"
            ]
        );
        assert_eq!(
            hoist(&[
                "labctl",
                "--color=never",
                "--endpoint-url=http://x",
                "destroy"
            ]),
            [
                "labctl",
                "--color=never",
                "destroy",
                "--endpoint-url=http://x"
            ]
        );
        // Nothing to move, or no command: unchanged.
        assert_eq!(
            hoist(&["labctl", "plan", "--json"]),
            ["labctl", "plan", "--json"]
        );
        assert_eq!(hoist(&["labctl", "--json"]), ["labctl", "--json"]);
        assert_eq!(hoist(&["labctl", "--help"]), ["labctl", "--help"]);
    }
}
