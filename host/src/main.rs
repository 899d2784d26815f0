//! The `edgefit` command line: parse, dispatch, print errors on one line.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// Exit status for a failed command (bad input, unsupported model...).
/// Usage errors exit with 2 (clap's convention).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Parser)]
#[command(
    name = "edgefit",
    version,
    about = "Fit VGG and ResNet CNNs to small devices: analyse, plan memory, compare"
)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole cause chain on one line, never a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
