//! The commands end to end against the in-memory cloud: the same sessions, lock, journal,
//! planner, executor and key files as a run against EC2, with only the connection swapped
//! (`session::Connect`). The CLI's behaviour against a real EC2 API is tested in `tests/it`.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser as _;

use super::session::Connect;
use super::{Terminal, apply, destroy, plan};
use crate::cli::{Cli, CloudArgs, Command};
use crate::cloud::memory::MemoryCloud;
use crate::desired::Desired;
use crate::error::Exit;

/// The in-memory cloud, shared by every command of a test.
struct Memory(Arc<MemoryCloud>);

impl Connect for Memory {
    type Cloud = MemoryCloud;

    async fn connect(
        &self,
        _args: &CloudArgs,
        _desired: &Desired,
        _deadline: Instant,
        _stop: &crate::apply::Stop,
    ) -> Result<super::session::Connected<MemoryCloud>, crate::error::Error> {
        Ok(super::session::Connected {
            cloud: Arc::clone(&self.0),
            unreached: Vec::new(),
        })
    }
}

const PLAIN: Terminal = Terminal {
    stdout_color: false,
    stderr_color: false,
    stderr_tty: false,
};

/// The command line, parsed as `labctl` parses it, with the manifest resolved.
fn command(args: &[&str]) -> Command {
    let mut cli = Cli::try_parse_from(std::iter::once("labctl").chain(args.iter().copied()))
        .expect("a valid command line");
    match &mut cli.command {
        Command::Plan(a) => a.cloud.manifest = a.cloud.manifest_arg.clone().unwrap(),
        Command::Apply(a) => a.cloud.manifest = a.cloud.manifest_arg.clone().unwrap(),
        Command::Destroy(a) => a.cloud.manifest = a.cloud.manifest_arg.clone().unwrap(),
        _ => unreachable!("only plan, apply and destroy are run here"),
    }
    cli.command
}

fn run(cloud: &Memory, args: &[&str]) -> Exit {
    match command(args) {
        Command::Plan(a) => plan::plan_in(cloud, &a, PLAIN),
        Command::Apply(a) => apply::apply_in(cloud, &a, PLAIN),
        Command::Destroy(a) => destroy::destroy_in(cloud, &a, PLAIN),
        _ => unreachable!(),
    }
    .expect("the command runs")
}

fn mutating(cloud: &MemoryCloud) -> Vec<String> {
    cloud
        .log()
        .into_iter()
        .filter(|call| !call.starts_with("Describe") && !call.starts_with("Find"))
        .collect()
}

/// apply makes every key pair and its 0400 file; a second apply and a plan change nothing
/// and send nothing that changes anything; destroy deletes them and retires their files.
#[test]
fn apply_plan_and_destroy_run_end_to_end_against_the_in_memory_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("labctl.yaml");
    std::fs::write(
        &manifest,
        "version: 1\nproject: mem\ndefaults: { regions: [us-east-1, eu-west-1], key_type: ed25519 }\nkeypairs:\n  - name: seat-${index}\n    count: 3\n",
    )
    .unwrap();
    let path = manifest.to_str().unwrap();
    let cloud = Memory(Arc::new(MemoryCloud::default()));

    assert_eq!(
        run(&cloud, &["plan", "--detailed-exitcode", "-q", path]),
        Exit::Changes
    );
    assert!(mutating(&cloud.0).is_empty(), "plan changed nothing");
    assert_eq!(run(&cloud, &["apply", "-q", path]), Exit::Success);
    for seat in 1..=3 {
        let key = dir.path().join(format!("keys/seat-{seat}.pem"));
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400, "{}", key.display());
        for region in ["us-east-1", "eu-west-1"] {
            assert!(cloud.0.get(region, &format!("seat-{seat}")).is_some());
        }
    }
    let made = mutating(&cloud.0).len();
    assert_eq!(made, 6, "{:?}", mutating(&cloud.0));

    assert_eq!(run(&cloud, &["apply", "-q", path]), Exit::Success);
    assert_eq!(
        run(&cloud, &["plan", "--detailed-exitcode", "-q", path]),
        Exit::Success
    );
    assert_eq!(
        mutating(&cloud.0).len(),
        made,
        "a second apply sends nothing"
    );

    assert_eq!(
        run(&cloud, &["destroy", "--yes", "-q", path]),
        Exit::Success
    );
    for seat in 1..=3 {
        assert!(cloud.0.get("us-east-1", &format!("seat-{seat}")).is_none());
        assert!(!dir.path().join(format!("keys/seat-{seat}.pem")).exists());
    }
    let retired = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".retired-")
        })
        .count();
    assert_eq!(retired, 3, "every key file is retired, none removed");
}
