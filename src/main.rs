//! The `twinwall` binary: command line, config file, TAPs, control socket,
//! signals and the event loop. All of it lives in [`shell`]; the library is
//! the sans-IO core.

mod shell;

use clap::Parser;

fn main() -> std::process::ExitCode {
    shell::cli::dispatch(shell::cli::Cli::parse())
}
