//! The commands: each wires the pipeline (manifest -> validate -> observe -> plan -> apply)
//! to the command line, and prints. stdout carries data (plans, reports, JSON, the schema);
//! stderr carries diagnostics, status lines and errors.
//!
//! One file per command; `session` holds what every command that talks to AWS does first
//! (validate, lock, connect, observe). This file holds the terminal, the manifest check and
//! the few helpers the commands share.

mod apply;
mod destroy;
mod output;
mod plan;
mod session;
mod validate;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, CloudArgs, Command, Var};
use crate::desired::Desired;
use crate::diagnostic::{self, Diagnostic, Severity};
use crate::error::{Error, Exit};
use crate::manifest::{self, Source};
use crate::validate::Context;

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
        Command::Validate(args) => validate::validate_command(&args, term),
        Command::Schema => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(crate::schema::json_schema().as_bytes())?;
            Ok(Exit::Success)
        }
        Command::Plan(args) => plan::plan_command(&args, term),
        Command::Apply(args) => apply::apply_command(&args, term),
        Command::Destroy(args) => destroy::destroy_command(&args, term),
        Command::Output(args) => output::output_command(&args, term),
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
        let (valid, more) = crate::validate::validate(&parsed, &context);
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

fn write_stdout(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
