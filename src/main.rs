//! The `labctl` binary: parse arguments, run, turn the result into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(labctl::main_with_args(std::env::args_os()).code())
}
