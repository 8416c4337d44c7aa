//! The commands: each wires the pipeline (manifest -> validate -> observe -> plan -> apply)
//! to the command line, and prints. stdout carries data (plans, reports, JSON, the schema);
//! stderr carries diagnostics, status lines and errors.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use clap::error::ErrorKind;

use crate::apply::{self, Progress, Settings};
use crate::cli::{
    ApplyArgs, Cli, CloudArgs, Command, DestroyArgs, OutputArgs, OutputFormat, Pace, PlanArgs,
    ReplaceTarget, ValidateArgs, Var,
};
use crate::cloud::{Cloud, Ec2, Ec2Options};
use crate::desired::{Desired, KeyName};
use crate::diagnostic::{self, Diagnostic, JsonDiagnostic, Severity};
use crate::error::{Error, Exit};
use crate::keys::{KeyStore, git_exposure};
use crate::lock;
use crate::manifest::{self, Source};
use crate::observe::{Observed, observe};
use crate::plan::{self, Action, KeyPairOp, Options, Plan};
use crate::render::{self, Style};
use crate::validate::{self, Context};

/// Run labctl with these arguments (the first is the program name) and return the exit status.
pub fn main_with_args<I, T>(args: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Exit::Success,
                _ => Exit::Failure,
            };
        }
    };
    let term = Terminal::detect();
    match run(cli, term) {
        Ok(exit) => exit,
        Err(err) => {
            if !matches!(err, Error::InvalidManifest) {
                eprintln!("{} {err}", term.error_prefix());
                if let Some(hint) = err.hint() {
                    eprintln!("hint: {hint}");
                }
            }
            err.exit()
        }
    }
}

/// Whether each stream is a terminal that may get colors.
#[derive(Clone, Copy, Debug)]
struct Terminal {
    stdout_color: bool,
    stderr_color: bool,
}

impl Terminal {
    fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Terminal {
            stdout_color: !no_color && std::io::stdout().is_terminal(),
            stderr_color: !no_color && std::io::stderr().is_terminal(),
        }
    }

    fn error_prefix(self) -> &'static str {
        if self.stderr_color {
            "\x1b[1;31merror:\x1b[0m"
        } else {
            "error:"
        }
    }

    fn warning_prefix(self) -> &'static str {
        if self.stderr_color {
            "\x1b[1;33mwarning:\x1b[0m"
        } else {
            "warning:"
        }
    }
}

fn run(cli: Cli, term: Terminal) -> Result<Exit, Error> {
    match cli.command {
        Command::Validate(args) => validate_command(&args, term),
        Command::Schema => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(crate::schema::json_schema().as_bytes())?;
            Ok(Exit::Success)
        }
        Command::Plan(args) => plan_command(&args, term),
        Command::Apply(args) => apply_command(&args, term),
        Command::Destroy(args) => destroy_command(&args, term),
        Command::Output(args) => output_command(&args, term),
    }
}

fn overrides(vars: &[Var]) -> Vec<(String, String)> {
    vars.iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect()
}

/// Read, parse and validate one manifest; the diagnostics come back sorted.
fn check(path: &Path, vars: &[Var]) -> (Source, Option<Desired>, Vec<Diagnostic>) {
    let source = match Source::read(path) {
        Ok(source) => source,
        Err(err) => {
            let source = err.source.unwrap_or_else(|| Source::from_text(path, ""));
            return (source, None, vec![err.diagnostic]);
        }
    };
    let (parsed, mut diagnostics) = manifest::parse(&source);
    let mut desired = None;
    if let Some(parsed) = parsed {
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::new(),
        };
        let context = Context {
            base_dir,
            home: std::env::var_os("HOME").map(PathBuf::from),
            overrides: overrides(vars),
        };
        let (valid, more) = validate::validate(&parsed, &context);
        diagnostics.extend(more);
        if !diagnostic::has_errors(&diagnostics) {
            desired = valid;
        }
    }
    diagnostic::sort(&mut diagnostics);
    (source, desired, diagnostics)
}

fn print_diagnostics(source: &Source, diagnostics: &[Diagnostic], term: Terminal) {
    if diagnostics.is_empty() {
        return;
    }
    let text = diagnostic::render_human(
        &source.name(),
        &source.text,
        diagnostics,
        diagnostic::Style {
            color: term.stderr_color,
        },
    );
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if errors > 0 {
        let _ = writeln!(
            stderr,
            "{} {} has {errors} error{}",
            term.error_prefix(),
            source.name(),
            if errors == 1 { "" } else { "s" }
        );
    }
}

fn validate_command(args: &ValidateArgs, term: Terminal) -> Result<Exit, Error> {
    let mut all_valid = true;
    let mut json_diagnostics = Vec::new();
    let mut checked = Vec::new();
    for path in &args.manifests {
        let (source, desired, diagnostics) = check(path, &args.vars);
        let valid = !diagnostic::has_errors(&diagnostics) && desired.is_some();
        all_valid &= valid;
        if !args.json {
            print_diagnostics(&source, &diagnostics, term);
            if let Some(desired) = &desired {
                let pairs = desired.keypairs.len();
                let regions = desired.regions().len();
                println!(
                    "{}: valid ({pairs} key pair{} in {regions} region{})",
                    source.name(),
                    if pairs == 1 { "" } else { "s" },
                    if regions == 1 { "" } else { "s" },
                );
            }
        }
        checked.push((source, diagnostics));
    }
    if args.json {
        for (source, diagnostics) in &checked {
            json_diagnostics.extend(diagnostics.iter().map(|d| (source.name(), d)));
        }
        let list: Vec<JsonDiagnostic<'_>> = json_diagnostics
            .iter()
            .map(|(file, d)| JsonDiagnostic::new(file, d))
            .collect();
        let doc = serde_json::json!({ "valid": all_valid, "diagnostics": list });
        write_stdout(&render::json_document(&doc))?;
    }
    Ok(if all_valid {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Validate a manifest for plan/apply; diagnostics (warnings too) go to stderr.
fn load(args: &CloudArgs, term: Terminal) -> Result<Desired, Error> {
    let (source, desired, diagnostics) = check(&args.manifest, &args.vars);
    let shown: Vec<Diagnostic> = if args.quiet {
        diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect()
    } else {
        diagnostics
    };
    print_diagnostics(&source, &shown, term);
    desired.ok_or(Error::InvalidManifest)
}

fn init_logging(verbose: u8) {
    // Never trace the SDK: its trace level prints requests and responses.
    let filter = match verbose {
        0 => return,
        1 => "labctl=debug",
        _ => "labctl=trace,aws_config=debug,aws_smithy_runtime=debug,aws_sdk_ec2=debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

struct StderrProgress {
    quiet: bool,
}

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}

/// Warn about key files that would land, not ignored, inside a git work tree.
fn warn_git_exposure(desired: &Desired, quiet: bool, term: Terminal) {
    if quiet {
        return;
    }
    let with_files: Vec<&crate::desired::KeyPairSpec> = desired
        .keypairs
        .iter()
        .filter(|k| k.output.is_some())
        .collect();
    let paths: Vec<&Path> = with_files
        .iter()
        .filter_map(|k| k.output.as_deref())
        .collect();
    for (index, root) in git_exposure(&paths) {
        eprintln!(
            "{} {} is inside the git work tree {} and not ignored: a private key could be committed",
            term.warning_prefix(),
            with_files[index].output_display,
            root.display()
        );
        eprintln!(
            "hint: add the key folder to .gitignore, or set `output_dir` outside the repository"
        );
    }
}

async fn connect(args: &CloudArgs, desired: &Desired) -> Arc<Ec2> {
    let options = Ec2Options {
        endpoint_url: args.endpoint_url.clone(),
        profile: args.profile.clone(),
        max_attempts: args.max_attempts,
        attempt_timeout: Duration::from_secs(args.timeout.min(30)),
        pace: match args.pace {
            Pace::Auto => args.endpoint_url.is_none(),
            Pace::Ec2 => true,
            Pace::None => false,
        },
    };
    Arc::new(Ec2::new(&options, &desired.regions()).await)
}

fn status(args: &CloudArgs, message: &str) {
    if !args.quiet {
        eprintln!("{message}");
    }
}

/// What a command's work needs besides the cloud, the desired and the observed state.
struct Run {
    /// Nothing new starts after this (`--timeout`).
    deadline: Instant,
    /// This run's id, tagged on key pairs EC2 creates.
    apply_id: String,
    /// Keys earlier runs asked EC2 to create and never saved (from the journal).
    unsaved: std::collections::BTreeSet<(String, String)>,
    /// The journal, held with the lock by commands that change things.
    journal: Option<Arc<crate::journal::Journal>>,
}

/// Validate the manifest, then (for commands that change things) take the manifest's lock,
/// then read the cloud and the key files: the start of every command that talks to AWS.
/// Nothing is sent and nothing written when the manifest has an error. A run that returns
/// (even with an error) marks the lock's record finished; only a killed run leaves it running.
fn session<T>(
    args: &CloudArgs,
    term: Terminal,
    lock_for: Option<&str>,
    work: impl AsyncFnOnce(&Arc<Ec2>, Desired, Observed, Run) -> Result<T, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    init_logging(args.verbose);
    let desired = load(args, term)?;
    warn_git_exposure(&desired, args.quiet || args.json, term);
    let apply_id = format!(
        "{:016x}",
        rand_core::RngCore::next_u64(&mut rand_core::OsRng)
    );
    let mut lock = match lock_for {
        Some(command) => {
            let lock = lock::acquire(&args.manifest, command)?;
            clean_temporary(&desired);
            Some(lock)
        }
        None => None,
    };
    let unsaved = match &lock {
        Some(lock) => lock.journal.unsaved.clone(),
        None => lock::unsaved(&args.manifest),
    };
    if !unsaved.is_empty() {
        tracing::debug!(
            ?unsaved,
            "keys an earlier run asked EC2 for were never saved"
        );
    }
    let journal = lock.as_ref().map(|l| Arc::clone(&l.journal));
    let rt = runtime()?;
    let result = rt.block_on(async {
        let cloud = connect(args, &desired).await;
        let regions = desired.regions();
        status(
            args,
            &format!("Reading key pairs in {} region(s)", regions.len()),
        );
        let observed =
            tokio::time::timeout_at(deadline.into(), observe(&cloud, &desired, KeyStore))
                .await
                .map_err(|_| Error::Timeout(args.timeout))?
                .map_err(Error::Observe)?;
        let run = Run {
            deadline,
            apply_id,
            unsaved,
            journal,
        };
        work(&cloud, desired, observed, run).await
    });
    if let Some(lock) = lock.as_mut() {
        lock.finish();
    }
    result
}

/// Remove temporary files a killed run left in the key folders (under the lock).
fn clean_temporary(desired: &Desired) {
    let mut dirs: Vec<std::path::PathBuf> = desired
        .keypairs
        .iter()
        .filter_map(|k| k.output.as_deref())
        .map(crate::keys::parent_of)
        .collect();
    dirs.push(desired.orphan_dir.clone());
    dirs.sort();
    dirs.dedup();
    let removed: usize = dirs.iter().map(|d| KeyStore.clean_temporary(d)).sum();
    if removed > 0 {
        tracing::debug!(
            removed,
            "removed temporary files left by an interrupted run"
        );
    }
}

fn write_stdout(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn plan_command(args: &PlanArgs, term: Terminal) -> Result<Exit, Error> {
    let cloud_args = &args.cloud;
    session(
        cloud_args,
        term,
        None,
        async |cloud, desired, observed, run| {
            let options = Options {
                unsaved: run.unsaved,
                ..Options::default()
            };
            let plan = plan::plan(&desired, &observed, &options);
            tracing::debug!(api_calls = ?cloud.api_calls(), "planned");
            if cloud_args.json {
                write_stdout(&render::plan_json(&plan, &cloud.api_calls()))?;
            } else {
                write_stdout(&render::plan_human(
                    &plan,
                    Style {
                        color: term.stdout_color,
                    },
                ))?;
            }
            Ok(if plan.has_conflicts() {
                Exit::Failure
            } else if args.detailed_exitcode && plan.has_changes() {
                Exit::Changes
            } else {
                Exit::Success
            })
        },
    )
}

/// Resolve `--replace` targets against the manifest.
fn replace_targets(
    desired: &Desired,
    targets: &[ReplaceTarget],
) -> Result<std::collections::BTreeSet<KeyName>, Error> {
    let mut out = std::collections::BTreeSet::new();
    for target in targets {
        let Some(spec) = desired
            .keypairs
            .iter()
            .find(|k| k.name.as_str() == target.name)
        else {
            return Err(Error::Usage(format!(
                "--replace {}: the manifest has no key pair of that name",
                target.name
            )));
        };
        if let Some(region) = &target.region {
            if !spec.regions.iter().any(|r| r.as_str() == region) {
                return Err(Error::Usage(format!(
                    "--replace {}@{region}: that key pair is not in {region}",
                    target.name
                )));
            }
            if spec.regions.len() > 1 {
                return Err(Error::Usage(format!(
                    "--replace {}@{region}: the key of `{}` is shared by {} regions; replacing it in one would break the others. Use --replace {}",
                    target.name,
                    target.name,
                    spec.regions.len(),
                    target.name
                )));
            }
        }
        out.insert(spec.name.clone());
    }
    Ok(out)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Print the plan (unless JSON), carry it out, print the report; exit 1 unless all went well.
async fn carry_out(
    cloud: &Arc<Ec2>,
    plan: &Plan,
    args: &CloudArgs,
    term: Terminal,
    show_plan: bool,
    run: &Run,
) -> Result<Exit, Error> {
    let style = Style {
        color: term.stdout_color,
    };
    if show_plan && !args.json && (plan.has_changes() || plan.has_conflicts()) {
        write_stdout(&render::plan_human(plan, style))?;
    }
    let progress: Arc<dyn Progress> = Arc::new(StderrProgress { quiet: args.quiet });
    let settings = Settings {
        concurrency: usize::from(args.concurrency),
        now: now(),
        apply_id: run.apply_id.clone(),
        unsaved: run.unsaved.clone(),
        journal: run.journal.clone(),
        deadline: run.deadline.into(),
    };
    let report = apply::apply(cloud, plan, KeyStore, settings, progress).await;
    let calls = cloud.api_calls();
    tracing::debug!(api_calls = ?calls, "applied");
    if args.json {
        write_stdout(&render::report_json(&plan.project, &report, &calls))?;
    } else {
        write_stdout(&render::report_human(&report, style))?;
    }
    let created_somewhere = report.outcomes.iter().any(|o| {
        let Action::KeyPair(a) = &o.action;
        matches!(a.op, KeyPairOp::Create { .. } | KeyPairOp::Replace { .. })
            && o.status == apply::Status::Done
    });
    if created_somewhere && !args.quiet && !args.json {
        eprintln!(
            "Private keys are saved with mode 0400 and never printed; keep them out of version control."
        );
    }
    Ok(if report.succeeded() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn apply_command(args: &ApplyArgs, term: Terminal) -> Result<Exit, Error> {
    session(
        &args.cloud,
        term,
        Some("apply"),
        async |cloud, desired, observed, run| {
            let options = Options {
                prune: args.prune,
                purge_local: args.purge_local,
                keep_local: false,
                replace: replace_targets(&desired, &args.replace)?,
                unsaved: run.unsaved.clone(),
            };
            let plan = plan::plan(&desired, &observed, &options);
            // Pruning deletes key pairs: list exactly what goes, and ask (or need --yes).
            let pruned: Vec<String> = plan
                .actions
                .iter()
                .filter(|Action::KeyPair(a)| matches!(a.op, KeyPairOp::Orphan { delete: true, .. }))
                .map(|Action::KeyPair(a)| format!("  {} in {}", a.name, a.region))
                .collect();
            if !pruned.is_empty() && !args.yes {
                eprintln!(
                    "--prune deletes {} key pair(s) of project {} that the manifest no longer lists:\n{}",
                    pruned.len(),
                    plan.project,
                    pruned.join("\n")
                );
                if !confirm("apply --prune", "Delete them?")? {
                    eprintln!("Cancelled; nothing was changed.");
                    return Ok(Exit::Failure);
                }
            }
            carry_out(cloud, &plan, &args.cloud, term, true, &run).await
        },
    )
}

/// Ask on the terminal; refuse without `--yes` when there is no terminal to ask on.
fn confirm(command: &str, question: &str) -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{command} deletes key pairs and needs --yes when stdin is not a terminal"
        )));
    }
    eprint!("{question} Type `yes` to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn destroy_command(args: &DestroyArgs, term: Terminal) -> Result<Exit, Error> {
    session(
        &args.cloud,
        term,
        Some("destroy"),
        async |cloud, desired, observed, run| {
            let options = Options {
                purge_local: args.purge_local,
                keep_local: args.keep_local,
                ..Options::default()
            };
            let plan = plan::plan_destroy(&desired, &observed, &options);
            let deletions = plan
                .actions
                .iter()
                .filter(|Action::KeyPair(a)| a.op.is_change())
                .count();
            if deletions == 0 {
                if args.cloud.json {
                    let report = apply::Report {
                        outcomes: plan
                            .actions
                            .iter()
                            .map(|a| apply::Outcome {
                                action: a.clone(),
                                status: apply::Status::Unchanged,
                                error: None,
                            })
                            .collect(),
                    };
                    write_stdout(&render::report_json(
                        &plan.project,
                        &report,
                        &cloud.api_calls(),
                    ))?;
                } else {
                    write_stdout(&format!(
                        "Nothing to destroy: project {} owns no key pair in its regions.\n",
                        plan.project
                    ))?;
                }
                return Ok(Exit::Success);
            }
            if !args.cloud.json {
                write_stdout(&render::plan_human(
                    &plan,
                    Style {
                        color: term.stdout_color,
                    },
                ))?;
            }
            if !args.yes
                && !confirm(
                    "destroy",
                    &format!(
                        "Delete {deletions} key pair(s) of project {}?",
                        plan.project
                    ),
                )?
            {
                eprintln!("Cancelled; nothing was deleted.");
                return Ok(Exit::Failure);
            }
            carry_out(cloud, &plan, &args.cloud, term, false, &run).await
        },
    )
}

fn output_command(args: &OutputArgs, term: Terminal) -> Result<Exit, Error> {
    let format = if args.cloud.json {
        OutputFormat::Json
    } else {
        args.format
    };
    session(
        &args.cloud,
        term,
        None,
        async |_cloud, desired, observed, _run| {
            let rows = crate::output::rows(&desired, &observed, KeyStore);
            let text = match format {
                OutputFormat::Text => crate::output::text(&rows),
                OutputFormat::Json => crate::output::json(&desired.project, &rows),
                OutputFormat::Env => crate::output::env(&desired, &rows),
            };
            write_stdout(&text)?;
            let missing = rows.iter().any(|r| r.id.is_none());
            if missing && !args.cloud.quiet {
                eprintln!("Some key pairs do not exist yet; run `labctl apply`.");
            }
            Ok(Exit::Success)
        },
    )
}
