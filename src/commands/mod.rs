//! The commands: each wires the pipeline (manifest -> validate -> observe -> plan -> apply)
//! to the command line, and prints. stdout carries data (plans, reports, JSON, the schema);
//! stderr carries diagnostics, status lines and errors.
//!
//! One file per command; `session` holds what every command that talks to AWS does first
//! (validate, lock, connect, observe). This file holds the terminal, the manifest check and
//! the few helpers the commands share.

mod apply;
mod carry;
mod destroy;
mod display;
mod handout;
mod init;
mod locate;
mod output;
mod plan;
mod reach;
mod session;
mod shared_state;
#[cfg(test)]
mod tests;
mod validate;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, CloudArgs, ColorChoice, Command, Var};
use crate::desired::Desired;
use crate::diagnostic::{self, Diagnostic, JsonDiagnostic, Severity};
use crate::error::{Error, Exit};
use crate::manifest::{self, Source};
use crate::validate::Context;

/// Run labctl with these arguments (the first is the program name) and return the exit status.
pub fn main_with_args<I, T>(args: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = crate::cli::hoist_command_flags(args.into_iter().map(Into::into).collect());
    // Before parsing: a usage error under --json is a JSON document too.
    let wants_json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json" || a == "--format=json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    Exit::Success
                }
                _ if wants_json => {
                    let message = err.kind().as_str().map_or_else(
                        || err.to_string().trim().to_owned(),
                        |kind| first_line(&err.to_string()).unwrap_or(kind).to_owned(),
                    );
                    print_json_error("usage", &message, Some("see labctl --help"));
                    Exit::Failure
                }
                _ => {
                    let _ = err.print();
                    Exit::Failure
                }
            };
        }
    };
    let term = Terminal::detect(cli.color);
    let json = cli.command.json();
    match run(cli, term) {
        Ok(exit) => exit,
        Err(err) => {
            // An invalid manifest has been reported (as diagnostics, or as the JSON document).
            if !matches!(err, Error::InvalidManifest) {
                if json {
                    print_json_error(err.kind(), &err.to_string(), err.hint().as_deref());
                } else {
                    eprintln!("{} {err}", term.error_prefix());
                    if let Some(hint) = err.hint() {
                        eprintln!("hint: {hint}");
                    }
                }
            }
            err.exit()
        }
    }
}

/// clap's message without its `error: ` prefix and usage block.
fn first_line(text: &str) -> Option<&str> {
    text.lines()
        .next()
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
}

/// The one JSON shape of a problem: `{"kind", "message", "hint"}` (a failure's `error`, and
/// every warning).
fn problem_json(kind: &str, message: &str, hint: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "kind": kind, "message": message, "hint": hint })
}

/// A failure as the one JSON document on stdout: `{"error": {"kind", "message", "hint"}}`.
fn print_json_error(kind: &str, message: &str, hint: Option<&str>) {
    let doc = serde_json::json!({ "error": problem_json(kind, message, hint) });
    let _ = write_stdout(&crate::render::json_document(&doc));
}

/// Whether each stream is a terminal that may get colors.
#[derive(Clone, Copy, Debug)]
struct Terminal {
    stdout_color: bool,
    stderr_color: bool,
    /// stderr is a terminal (progress display, prompts' text).
    stderr_tty: bool,
}

impl Terminal {
    /// `--color`, then `NO_COLOR` (no colors when set and not empty), then `CLICOLOR_FORCE`
    /// (colors even off a terminal when set and not `0`), then whether each stream is a terminal.
    fn detect(choice: ColorChoice) -> Self {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && (set("CLICOLOR_FORCE") || tty),
        };
        let stderr_tty = std::io::stderr().is_terminal();
        Terminal {
            stdout_color: decide(std::io::stdout().is_terminal()),
            stderr_color: decide(stderr_tty),
            stderr_tty,
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

impl Command {
    /// Whether this command prints JSON (then every outcome is one JSON document).
    fn json(&self) -> bool {
        match self {
            Command::Validate(a) => a.json,
            Command::Plan(a) => a.cloud.json,
            Command::Apply(a) => a.cloud.json,
            Command::Destroy(a) => a.cloud.json,
            Command::Output(a) => a.cloud.json || a.format == crate::cli::OutputFormat::Json,
            Command::Handout(a) => a.json,
            Command::Init(_)
            | Command::Schema
            | Command::Completions(_)
            | Command::Names
            | Command::Man(_) => false,
        }
    }
}

fn run(cli: Cli, term: Terminal) -> Result<Exit, Error> {
    if let Some(dir) = &cli.directory {
        std::env::set_current_dir(dir)
            .map_err(|err| Error::Usage(format!("-C {}: cannot go there: {err}", dir.display())))?;
    }
    let file = cli.file.as_deref();
    match cli.command {
        Command::Init(args) => init::init_command(&args, file, term),
        Command::Validate(mut args) => {
            if args.manifests.is_empty() {
                args.manifests.push(locate::resolve(None, file)?);
            } else if let Some(file) = file {
                args.manifests.push(file.to_owned());
            }
            validate::validate_command(&args, term)
        }
        Command::Schema => {
            write_stdout(&crate::schema::json_schema())?;
            Ok(Exit::Success)
        }
        Command::Plan(mut args) => {
            resolve(&mut args.cloud, file)?;
            plan::plan_command(&args, term)
        }
        Command::Apply(mut args) => {
            resolve(&mut args.cloud, file)?;
            apply::apply_command(&args, term)
        }
        Command::Destroy(mut args) => {
            resolve(&mut args.cloud, file)?;
            destroy::destroy_command(&args, term)
        }
        Command::Output(mut args) => {
            resolve(&mut args.cloud, file)?;
            // `--format json` is `--json`: one document, errors included.
            args.cloud.json |= args.format == crate::cli::OutputFormat::Json;
            output::output_command(&args, term)
        }
        Command::Handout(mut args) => {
            args.manifest = locate::resolve(None, file)?;
            handout::handout_command(&args, term)
        }
        Command::Completions(args) => {
            let mut out = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "labctl", &mut out);
            out.extend_from_slice(completion_names(args.shell).as_bytes());
            std::io::stdout().lock().write_all(&out)?;
            Ok(Exit::Success)
        }
        Command::Names => {
            // For completion scripts: never a diagnostic, never a failure they would show.
            if let Ok(path) = locate::resolve(None, file) {
                let (_, desired, _) = check(&path, &[]);
                let mut names: Vec<String> = desired
                    .map(|d| d.keypairs.into_iter().map(|k| k.name.to_string()).collect())
                    .unwrap_or_default();
                names.dedup();
                let mut text = names.join("\n");
                text.push('\n');
                write_stdout(&text)?;
            }
            Ok(Exit::Success)
        }
        Command::Man(args) => man(&args),
    }
}

/// What the generated completion script gets besides clap's static completions: the key pair
/// names of the manifest (`labctl __names`) after `handout` and `--replace`, read when the
/// user presses Tab. bash and fish; the other shells complete statically.
fn completion_names(shell: clap_complete::Shell) -> &'static str {
    match shell {
        clap_complete::Shell::Bash => {
            r#"
# Key pair names from the manifest after `handout` and `--replace` (labctl __names).
_labctl_with_names() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local before=" ${COMP_WORDS[*]:1:COMP_CWORD-1} "
    if [[ "$prev" == "--replace" ]] || {
        [[ "$before" == *" handout "* && "$cur" != -* ]] &&
            [[ " --out --var --show-passphrase -f --file -C --directory " != *" $prev "* ]]
    }; then
        COMPREPLY=($(compgen -W "$(labctl __names 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _labctl "$@"
}
complete -F _labctl_with_names -o nosort -o bashdefault -o default labctl
"#
        }
        clap_complete::Shell::Fish => {
            r#"
# Key pair names from the manifest after `handout` and `--replace` (labctl __names).
complete -c labctl -n "__fish_seen_subcommand_from handout" -f -a "(labctl __names 2>/dev/null)"
complete -c labctl -n "__fish_seen_subcommand_from apply plan" -l replace -x -a "(labctl __names 2>/dev/null)"
"#
        }
        _ => "",
    }
}

/// Every man page into `dir` (created if missing): `labctl.1` and `labctl-COMMAND.1`. A page
/// is written over an earlier one, never through a link (`O_NOFOLLOW`).
fn write_pages(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir)?;
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let mut pages = vec![cli.clone()];
    pages.extend(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    for page in pages {
        let man = clap_mangen::Man::new(page);
        let mut text = Vec::new();
        man.render(&mut text)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
            .open(dir.join(man.get_filename()))?;
        file.write_all(&text)?;
    }
    Ok(())
}

/// `labctl man`: labctl's page, one command's (`labctl-plan(1)`, as the main page's list of
/// commands names them), or every page written into a folder.
fn man(args: &crate::cli::ManArgs) -> Result<Exit, Error> {
    if let Some(dir) = &args.dir {
        write_pages(dir).map_err(|err| {
            Error::Usage(format!(
                "cannot write the pages to {}: {err}",
                dir.display()
            ))
        })?;
        eprintln!("Wrote labctl.1 and a page per command to {}", dir.display());
        return Ok(Exit::Success);
    }
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let page = match &args.command {
        None => cli,
        Some(name) => cli.find_subcommand(name).cloned().ok_or_else(|| {
            let all = Cli::command();
            let names: Vec<&str> = all.get_subcommands().map(clap::Command::get_name).collect();
            Error::Usage(format!(
                "no command `{name}`; the commands: {}",
                names.join(", ")
            ))
        })?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::io::stdout().lock().write_all(&out)?;
    Ok(Exit::Success)
}

/// Settle which manifest a command works on.
fn resolve(args: &mut CloudArgs, file: Option<&Path>) -> Result<(), Error> {
    args.manifest = locate::resolve(args.manifest_arg.as_deref(), file)?;
    Ok(())
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

/// Validate a manifest for plan/apply; diagnostics (warnings too) go to stderr, or with
/// `--json` into the one JSON document (an invalid manifest's is written here).
fn load(args: &CloudArgs, term: Terminal) -> Result<(Desired, Vec<serde_json::Value>), Error> {
    load_manifest(&args.manifest, &args.vars, args.json, args.quiet, term)
}

/// Read and validate a manifest, showing its diagnostics (with `json`, returning them for
/// the document, or writing the invalid-manifest document).
fn load_manifest(
    manifest: &Path,
    vars: &[Var],
    json: bool,
    quiet: bool,
    term: Terminal,
) -> Result<(Desired, Vec<serde_json::Value>), Error> {
    let (source, desired, diagnostics) = check(manifest, vars);
    if json {
        let name = source.name();
        let list: Vec<serde_json::Value> = diagnostics
            .iter()
            .map(|d| serde_json::to_value(JsonDiagnostic::new(&name, d)).unwrap_or_default())
            .collect();
        let Some(desired) = desired else {
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            let message = format!(
                "{name} has {errors} error{}",
                if errors == 1 { "" } else { "s" }
            );
            let doc = serde_json::json!({
                "error": problem_json(
                    "invalid-manifest",
                    &message,
                    Some("labctl validate explains each one"),
                ),
                "diagnostics": list,
            });
            write_stdout(&crate::render::json_document(&doc))?;
            return Err(Error::InvalidManifest);
        };
        return Ok((desired, list));
    }
    let shown: Vec<Diagnostic> = if quiet {
        diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect()
    } else {
        diagnostics
    };
    print_diagnostics(&source, &shown, term);
    desired
        .map(|d| (d, Vec::new()))
        .ok_or(Error::InvalidManifest)
}

/// Every file of the manifest that holds or will hold a private key that git could take, with
/// how it is shown, the work tree and why: each `output` and its `.ppk` (with `existing_only`,
/// `validate`'s view, only those that exist), the names their retired and replaced copies
/// will take, and every key file already in the manifest's key folders (`.pem`, `.ppk`,
/// retired and replaced copies, also of key pairs the manifest no longer lists).
fn git_exposure(
    desired: &Desired,
    existing_only: bool,
) -> Vec<(String, PathBuf, crate::keys::Exposure)> {
    // (the file it stands for, as shown; this name, as shown; the path; whether only its
    // content says it holds a key: a file found in a key folder by its name)
    let mut probes: Vec<(String, String, PathBuf, bool)> = Vec::new();
    let mut folders: std::collections::BTreeMap<PathBuf, String> =
        std::collections::BTreeMap::new();
    for spec in &desired.keypairs {
        for file in spec.output.iter().chain(spec.ppk.iter()) {
            let shown = if Some(file) == spec.output.as_ref() {
                spec.output_display.clone()
            } else {
                shown_beside(&spec.output_display, file)
            };
            folders
                .entry(crate::keys::parent_of(file))
                .or_insert_with(|| shown.clone());
            if !existing_only || file.exists() {
                probes.push((shown.clone(), shown.clone(), file.clone(), false));
            }
            if !existing_only {
                for aside in crate::keys::aside_names(file) {
                    let aside_shown = format!("{shown}.retired-… / .replaced-…");
                    probes.push((shown.clone(), aside_shown, aside, false));
                }
            }
        }
    }
    for (folder, shown) in &folders {
        for file in key_files_in(folder) {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let file_shown = shown_beside(shown, Path::new(&*name));
            probes.push((file_shown.clone(), file_shown, file, true));
        }
    }
    let paths: Vec<&Path> = probes.iter().map(|(_, _, p, _)| p.as_path()).collect();
    // One warning per file and reason: a folder nothing ignores is said once per key file,
    // not again for the names its copies would take. Git answers first; only a file it could
    // take is read (the usual key folder is ignored, and then no file is read at all).
    let mut seen = std::collections::BTreeSet::new();
    crate::keys::git_exposure(&paths)
        .into_iter()
        .filter(|(index, _, _)| {
            let (_, _, path, by_content) = &probes[*index];
            !by_content || holds_private_key(path)
        })
        .filter(|(index, _, why)| seen.insert((probes[*index].0.clone(), *why)))
        .map(|(index, root, why)| (probes[index].1.clone(), root, why))
        .collect()
}

/// How to show a file beside one shown as `shown`: the same folder as the user wrote it.
fn shown_beside(shown: &str, file: &Path) -> String {
    match file.file_name() {
        Some(name) => Path::new(shown).with_file_name(name).display().to_string(),
        None => shown.to_owned(),
    }
}

/// The files in a key folder named as labctl names key material: `.pem` and `.ppk` files and
/// their retired and replaced copies (at most 10,000 entries looked at).
fn key_files_in(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .take(10_000)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_ppk_name(n) || is_pem_name(n))
        .map(|n| folder.join(n))
        .collect()
}

fn is_pem_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    Path::new(&lower).extension().is_some_and(|e| e == "pem")
        || name.contains(".pem.retired-")
        || name.contains(".pem.replaced-")
}

fn is_ppk_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    Path::new(&lower).extension().is_some_and(|e| e == "ppk")
        || name.contains(".ppk.retired-")
        || name.contains(".ppk.replaced-")
}

/// Whether a file found by its name holds a private key (a certificate named `.pem` is not a
/// secret): read as its name says, once.
fn holds_private_key(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let state = if is_ppk_name(&name) {
        crate::keys::KeyCustody::inspect(crate::keys::FileCustody, crate::keys::KeyRef::Ppk(path))
    } else {
        crate::keys::KeyCustody::inspect(crate::keys::FileCustody, crate::keys::KeyRef::Pem(path))
    };
    matches!(state, crate::keys::FileState::Key { .. })
}

/// Warn about exposed key files: on stderr, or (with `--json`) returned for the document.
fn report_git_exposure(
    exposed: &[(String, PathBuf, crate::keys::Exposure)],
    json: bool,
    term: Terminal,
) -> Vec<serde_json::Value> {
    let mut warnings = Vec::new();
    for (file, root, why) in exposed {
        let (message, hint) = match why {
            crate::keys::Exposure::NotIgnored => (
                format!(
                    "{file} is inside the git work tree {} and not ignored: a private key could be committed",
                    root.display()
                ),
                "add the key folder to .gitignore, or set `output_dir` outside the repository"
                    .to_owned(),
            ),
            crate::keys::Exposure::Unchecked => (
                format!(
                    "{file} is inside the git work tree {}, and git could not say whether it would commit it (git refuses the repository?)",
                    root.display()
                ),
                "run `git status` there to see why git refuses (a repository another user owns needs `git config --global --add safe.directory`), and keep key files out of it".to_owned(),
            ),
            crate::keys::Exposure::Tracked => (
                format!(
                    "{file} is tracked by git in {} (.gitignore does not untrack a file): a private key is committed with the next commit",
                    root.display()
                ),
                "untrack it with `git rm --cached FILE` and commit; if it was ever pushed, replace the key (`labctl apply --replace NAME`)".to_owned(),
            ),
        };
        warnings.extend(warn(
            json,
            term,
            ("key-file-in-git", &message, &hint),
            &[("file", serde_json::Value::from(file.as_str()))],
        ));
    }
    warnings
}

/// One warning, the one way: `warning: …` and `hint: …` on stderr for people, or (with
/// `--json`) returned as data for the document: `problem_json`'s shape with `kind` and the
/// `extra` fields.
fn warn(
    json: bool,
    term: Terminal,
    (kind, message, hint): (&str, &str, &str),
    extra: &[(&str, serde_json::Value)],
) -> Option<serde_json::Value> {
    if json {
        let mut warning = problem_json(kind, message, Some(hint));
        for (field, value) in extra {
            warning[*field] = value.clone();
        }
        Some(warning)
    } else {
        eprintln!("{} {message}", term.warning_prefix());
        eprintln!("hint: {hint}");
        None
    }
}

/// Write a JSON document with the run's warnings added (an array, empty when none): the
/// document is data until here, and becomes text once.
fn write_json(mut value: serde_json::Value, warnings: &[serde_json::Value]) -> Result<(), Error> {
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "warnings".to_owned(),
            serde_json::Value::from(warnings.to_vec()),
        );
    }
    write_stdout(&crate::render::json_document(&value))
}

fn write_stdout(text: &str) -> Result<(), Error> {
    let mut written = STDOUT_WRITTEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut stdout = std::io::stdout().lock();
    *written = true;
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Whether anything went to stdout yet, held while writing: a second Ctrl-C under `--json`
/// prints its document only when no other was (or is being) written, so stdout always holds
/// exactly one.
static STDOUT_WRITTEN: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// Quit at once (a second Ctrl-C): with `--json`, first the one document, unless the command
/// already wrote its own.
fn quit_now(json: bool, message: &str, hint: &str) -> ! {
    let written = STDOUT_WRITTEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if json && !*written {
        let doc = serde_json::json!({ "error": problem_json("interrupted", message, Some(hint)) });
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(crate::render::json_document(&doc).as_bytes());
        let _ = stdout.flush();
    } else if !json {
        eprintln!("\nQuitting at once; the next run picks up where this one stopped.");
    }
    std::process::exit(130)
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
    // A Ctrl-C while the question waits cancels (see `session::watch_signals`).
    PROMPTING.store(true, std::sync::atomic::Ordering::SeqCst);
    let read = std::io::stdin().read_line(&mut answer);
    PROMPTING.store(false, std::sync::atomic::Ordering::SeqCst);
    read?;
    Ok(answer.trim() == "yes")
}

/// Whether a `yes` question is waiting for its answer: a Ctrl-C then cancels at once.
static PROMPTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
