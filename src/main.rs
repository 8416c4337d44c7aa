//! The `labctl` binary: parse arguments, run, turn the result into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    // While the process has one thread: the local time zone (named in lock messages).
    labctl::learn_local_offset();
    ExitCode::from(labctl::main_with_args(std::env::args_os()).code())
}
