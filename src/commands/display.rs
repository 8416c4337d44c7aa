//! How a run shows its progress on stderr: the live display on a terminal, step lines with
//! -v, the notes a user needs afterwards.

use std::time::Duration;

use crate::apply::Progress;
use crate::cli::CloudArgs;
use crate::resource::Scope;

use super::Terminal;

/// How a run shows its progress on stderr: a live display on a terminal (done / total per
/// region, elapsed, EC2's throttling), step lines with -v off a terminal, else nothing but
/// the notes a user needs afterwards. `-q` and `--json` show nothing.
pub(super) struct Display {
    bar: Option<indicatif::ProgressBar>,
    /// Step lines too (-v).
    verbose: bool,
    quiet: bool,
    /// (scope, done, total)
    regions: std::sync::Mutex<Vec<(Scope, usize, usize)>>,
    throttled: std::sync::atomic::AtomicU64,
    retried: std::sync::atomic::AtomicU64,
}

impl Display {
    /// `totals`: the number of changes per scope.
    pub(super) fn new(args: &CloudArgs, term: Terminal, totals: Vec<(Scope, usize)>) -> Self {
        let quiet = !args.says_status();
        let total: usize = totals.iter().map(|(_, n)| n).sum();
        let bar = (term.stderr_tty && !quiet && total > 0).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            // `wide_msg` takes what is left of the terminal's width and cuts the rest: the
            // line never wraps, however many scopes and counts it shows.
            let template = if term.stderr_color {
                "{spinner:.cyan} [{elapsed_precise}] {bar:24.cyan/blue} {pos}/{len} {wide_msg}"
            } else {
                "{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} {wide_msg}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let display = Display {
            bar,
            verbose: args.verbose > 0,
            quiet,
            regions: std::sync::Mutex::new(totals.into_iter().map(|(r, n)| (r, 0, n)).collect()),
            throttled: std::sync::atomic::AtomicU64::new(0),
            retried: std::sync::atomic::AtomicU64::new(0),
        };
        display.refresh();
        display
    }

    /// EC2's throttling answers and the retries after real errors so far (shown: labctl
    /// slows down and retries).
    pub(super) fn set_waits(&self, throttled: u64, retried: u64) {
        let old_throttled = self
            .throttled
            .swap(throttled, std::sync::atomic::Ordering::Relaxed);
        let old_retried = self
            .retried
            .swap(retried, std::sync::atomic::Ordering::Relaxed);
        if (old_throttled, old_retried) != (throttled, retried) {
            self.refresh();
        }
    }

    fn refresh(&self) {
        let Some(bar) = &self.bar else { return };
        let regions = self
            .regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut parts: Vec<String> = regions
            .iter()
            .filter(|(_, _, total)| *total > 0)
            .map(|(region, done, total)| format!("{region} {done}/{total}"))
            .collect();
        let throttled = self.throttled.load(std::sync::atomic::Ordering::Relaxed);
        if throttled > 0 {
            parts.push(format!(
                "EC2 throttled {throttled} (slowing down, retrying)"
            ));
        }
        let retried = self.retried.load(std::sync::atomic::Ordering::Relaxed);
        if retried > 0 {
            parts.push(format!("{retried} retried"));
        }
        bar.set_message(parts.join(" · "));
    }

    /// Whether a live display is drawn (a terminal, not -q or --json, something to do).
    pub(super) fn is_live(&self) -> bool {
        self.bar.is_some()
    }

    /// Remove the live display (before the report is printed).
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Display {
    fn step(&self, message: &str) {
        if self.quiet || !self.verbose {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn note(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn finished(&self, scope: &Scope) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        let mut regions = self
            .regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = regions.iter_mut().find(|(r, _, _)| r == scope) {
            entry.1 += 1;
        }
        drop(regions);
        self.refresh();
    }
}
