//! Every subcommand and flag, in one place. Each doc comment is the command's `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Datablox's build tasks. Run `cargo xtask <command> --help` for one command's options.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    disable_help_subcommand = true
)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the Engage extension: reproducible sw_packages archives, metadata, drivers,
    /// SHA256SUMS and dist-manifest.json (default output: target/dist/)
    Dist(DistFlags),
    /// Validate every manifest without building anything
    Check(CheckFlags),
    /// Time `dist` against the shell pipelines on a generated corpus (see BENCHMARKS.md); runs a
    /// release build of xtask, which it builds first when run from a debug build
    Bench(BenchFlags),
}

#[derive(Debug, clap::Args)]
pub struct DistFlags {
    /// Output directory (default: target/dist under the repository)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Archives built at once (default: all cores); the output does not depend on it
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Hash every source file again instead of trusting the stat cache (for CI checkouts whose
    /// mtimes are new); the output is the same
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, clap::Args)]
pub struct CheckFlags {
    /// Print one JSON object per diagnostic on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchFlags {
    /// Corpus size, as gen_corpus.py defines it
    #[arg(long, default_value = "small", value_parser = ["small", "medium", "large"])]
    pub profile: String,
    /// Rounds; every mode runs once per round and the table shows medians
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Corpus seed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the results as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Directory of gen_corpus.py and pack.sh (default: $DATABLOX_BENCH_TOOLS, else ../shared/bench
    /// beside the repository)
    #[arg(long, value_name = "DIR")]
    pub corpus_tools: Option<PathBuf>,
}
