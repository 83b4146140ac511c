use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = leakscope::cli::Cli::parse();
    match leakscope::app::execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
