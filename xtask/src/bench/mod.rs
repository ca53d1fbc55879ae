//! `cargo xtask bench`: generates the benchmark corpus, wraps it in a repository that `dist`
//! accepts, and times `dist` against the shell pipelines of `pack.sh`, side by side.
//!
//! Every mode runs once per round, in the same order (A B C A B C …), so ratios between modes
//! hold on a noisy machine. Each command's CPU time and peak RSS come from `wait4` (`run::timed`).
//! This module prints nothing: it reports progress through a callback and returns a `Report`,
//! which `main` prints as a table and writes as JSON.
//!
//! Three concerns, one module each: `corpus` (generate the corpus, wrap it in a repository),
//! `run` (the timed commands, every one through xshell) and `report` (medians, paired ratios,
//! targets, the table). A new mode is a `run::Mode` variant: its command in `run`, its row and
//! targets in `report`. `deploy` times the node deployer on the same corpus (its own modes and
//! table, `--deploy-only` to run only them). `auth` measures the cluster key's handshake and
//! per-frame tags on data connections (`--auth-only` to run only it).

pub mod auth;
mod corpus;
pub mod deploy;
mod report;
mod run;

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

pub use corpus::Corpus;
use report::{Measured, summarize};
pub use report::{Report, Row, Sample, Target, median, paired};
pub use run::xtask_binary;

use corpus::{find_tools, prepare_corpus, remove_dir, warm};
use run::{Mode, mode_dir, run_mode, which};

/// Where `gen_corpus.py` and `pack.sh` are, unless `--corpus-tools` says otherwise.
pub const TOOLS_ENV: &str = "DATABLOX_BENCH_TOOLS";

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// `small`, `medium` or `large`, as `gen_corpus.py` knows them.
    pub profile: String,
    pub seed: u64,
    pub runs: usize,
    /// The directory holding `gen_corpus.py` and `pack.sh`.
    pub tools: Option<PathBuf>,
    /// The `xtask` binary to time.
    pub xtask: PathBuf,
    /// Threads of `dist` and of `gen_corpus.py`; the scaling table runs `dist` with 1, 2, 4, …
    /// up to this many.
    pub jobs: usize,
    /// Also time a cold dev-profile compile of xtask (`cargo build -p xtask` into an empty
    /// target directory), once, before the rounds.
    pub cold_compile: bool,
}

pub fn run(repo: &Path, options: &BenchOptions, log: &mut dyn FnMut(&str)) -> Result<Report> {
    let tools = find_tools(repo, options.tools.as_deref())?;
    let work = repo
        .join("target")
        .join("bench")
        .join(format!("{}-seed{}", options.profile, options.seed));
    let corpus = prepare_corpus(repo, &tools, &work, options, log)?;
    let bench_repo = corpus.repo.clone();
    let blox = bench_repo.join("blox");
    let outs = work.join("out");
    let mut notes = vec![
        "wall times include process start; the page cache is warm".to_string(),
        format!(
            "the one-file mode rewrites `{}` in a median-sized block",
            corpus.changed_file.display()
        ),
    ];
    if corpus.added_module_files > 0 {
        notes.push(format!(
            "the bench added {} `__init__.py`/`b_<name>.py` files to the corpus copy so every directory is a block; all modes pack them",
            corpus.added_module_files
        ));
    }

    // The scaling table's cold builds with fewer jobs come right after `DistCold` (the row of
    // `options.jobs`), before the one-file mode changes a source, so that within a round every
    // cold build packs the same files and must write the same bytes.
    let mut modes = vec![Mode::DistCold];
    modes.extend(
        std::iter::successors(Some(1usize), |jobs| Some(jobs * 2))
            .take_while(|&jobs| jobs < options.jobs)
            .map(Mode::DistJobs),
    );
    modes.extend([Mode::Legacy, Mode::Gzip]);
    if which("pigz") {
        modes.push(Mode::Pigz);
    } else {
        notes.push("`pigz` is missing (`apt-get install -y pigz`): its row is skipped".into());
    }
    modes.extend([Mode::DistNoop, Mode::DistTouch, Mode::DistOneFile]);

    let compile_s = if options.cold_compile {
        log("compiling xtask cold (dev profile) into target/bench/cold-compile");
        Some(run::cold_compile(repo, &work.join("cold-compile"))?)
    } else {
        None
    };

    log("warming the page cache");
    warm(&blox)?;
    let warm_out = outs.join("dist-warm");
    remove_dir(&warm_out)?;
    let first = run_mode(
        Mode::DistCold,
        options,
        &tools,
        &bench_repo,
        &warm_out,
        &corpus,
    )?;
    log(&format!("first dist: {:.2}s", first.0.wall_s));

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); modes.len()];
    let mut output_bytes: Vec<Option<u64>> = vec![None; modes.len()];
    // `SHA256SUMS` of every cold build of a round, to show that `--jobs` does not change a byte.
    let mut identical = true;
    for round in 0..options.runs {
        let mut sums: Vec<String> = Vec::new();
        for (index, &mode) in modes.iter().enumerate() {
            let out = if mode.is_incremental() {
                warm_out.clone()
            } else {
                outs.join(mode_dir(mode))
            };
            if !mode.is_incremental() {
                remove_dir(&out)?;
            }
            let (sample, bytes) = run_mode(mode, options, &tools, &bench_repo, &out, &corpus)?;
            log(&format!(
                "round {}/{}: {:<40} {:>8.3}s",
                round + 1,
                options.runs,
                mode.name(),
                sample.wall_s
            ));
            samples[index].push(sample);
            if matches!(mode, Mode::DistCold | Mode::DistJobs(_)) {
                let path = out.join("SHA256SUMS");
                sums.push(std::fs::read_to_string(&path).with_path("read", &path)?);
            }
            if bytes.is_some() {
                output_bytes[index] = bytes;
            }
        }
        identical &= sums.windows(2).all(|pair| pair[0] == pair[1]);
    }
    for mode in &modes {
        if !mode.is_incremental() {
            remove_dir(&outs.join(mode_dir(*mode)))?;
        }
    }

    Ok(summarize(
        options,
        corpus,
        modes,
        samples,
        output_bytes,
        Measured {
            identical_across_jobs: identical,
            cold_compile_s: compile_s,
        },
        notes,
    ))
}

/// The corpus repository of `options` (generated on first use) and its work directory, for the
/// deploy modes.
pub fn corpus(
    repo: &Path,
    options: &BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(Corpus, PathBuf)> {
    let tools = find_tools(repo, options.tools.as_deref())?;
    let work = repo
        .join("target")
        .join("bench")
        .join(format!("{}-seed{}", options.profile, options.seed));
    Ok((prepare_corpus(repo, &tools, &work, options, log)?, work))
}
