//! The `voicepaas` binary: see `voicepaas --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    voicepaas::cli::main(voicepaas::cli::Cli::parse())
}
