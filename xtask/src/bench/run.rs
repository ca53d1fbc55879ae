//! The timed commands: `dist` in its modes and `pack.sh`'s pipelines, each under
//! `/usr/bin/time`, and the release build of the `xtask` being timed. Every command goes through
//! xshell's `cmd!`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use xshell::cmd;

use super::corpus::{command_failed, shell, write};
use super::report::TaskTimes;
use super::{BenchOptions, Corpus, Sample};
use crate::error::{Diagnostic, Error, IoContext, Result};

/// One benchmarked command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// A fresh output directory, `--jobs` as many as the cores.
    DistCold,
    /// The same with this many jobs: the scaling table.
    DistJobs(usize),
    Legacy,
    Gzip,
    Pigz,
    DistNoop,
    DistTouch,
    DistOneFile,
}

impl Mode {
    pub(super) fn name(self) -> String {
        match self {
            Mode::DistJobs(jobs) => format!("dist, cold, --jobs {jobs}"),
            other => other.fixed_name().to_string(),
        }
    }

    fn fixed_name(self) -> &'static str {
        match self {
            Mode::DistCold => "dist, cold",
            Mode::DistJobs(_) => "dist, cold, --jobs N",
            Mode::Legacy => "legacy tar czf, 1 at a time",
            Mode::Gzip => "tar | gzip -n -6, 1 at a time",
            Mode::Pigz => "tar | pigz -p1 -n -6, 2 at a time",
            Mode::DistNoop => "dist, nothing changed",
            Mode::DistTouch => "dist, every file touched",
            Mode::DistOneFile => "dist, one file changed",
        }
    }

    pub(super) fn is_shell(self) -> bool {
        matches!(self, Mode::Legacy | Mode::Gzip | Mode::Pigz)
    }

    pub(super) fn is_incremental(self) -> bool {
        matches!(self, Mode::DistNoop | Mode::DistTouch | Mode::DistOneFile)
    }
}

/// The `xtask` to time: this one if it is an optimized build, else the release build next to
/// it, built first with `cargo build --release`.
pub fn xtask_binary(repo: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let current = std::env::current_exe().with_path("find", Path::new("the running xtask"))?;
    if !cfg!(debug_assertions) {
        return Ok(current);
    }
    log("building the release binary: cargo build --release -p xtask");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let sh = shell()?;
    sh.change_dir(repo);
    cmd!(sh, "{cargo} build --release --quiet -p xtask")
        .quiet()
        .run()
        .map_err(|error| {
            command_failed(
                error,
                "fix the build, or run `cargo run --release -p xtask -- bench`",
            )
        })?;
    let release = current
        .parent()
        .and_then(Path::parent)
        .map(|target| {
            target
                .join("release")
                .join(current.file_name().unwrap_or_default())
        })
        .filter(|path| path.is_file());
    release.ok_or_else(|| {
        Error::new(
            Diagnostic::error(
                "bench-build",
                "cannot find the release binary of xtask next to the debug one",
            )
            .help("run `cargo run --release -p xtask -- bench`"),
        )
    })
}

/// Compiles xtask (dev profile, what `cargo xtask` builds) into the empty directory `target_dir`;
/// returns the wall seconds. The directory is removed before and after.
pub(super) fn cold_compile(repo: &Path, target_dir: &Path) -> Result<f64> {
    super::corpus::remove_dir(target_dir)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let sh = shell()?;
    sh.change_dir(repo);
    let started = Instant::now();
    cmd!(sh, "{cargo} build --quiet -p xtask")
        .env("CARGO_TARGET_DIR", target_dir)
        .quiet()
        .run()
        .map_err(|error| command_failed(error, "fix the build first"))?;
    let seconds = started.elapsed().as_secs_f64();
    super::corpus::remove_dir(target_dir)?;
    Ok(seconds)
}

pub(super) fn mode_dir(mode: Mode) -> String {
    match mode {
        Mode::DistJobs(jobs) => return format!("dist-jobs{jobs}"),
        Mode::DistCold => "dist-cold",
        Mode::Legacy => "legacy",
        Mode::Gzip => "gzip",
        Mode::Pigz => "pigz1",
        Mode::DistNoop | Mode::DistTouch | Mode::DistOneFile => "dist-warm",
    }
    .to_string()
}

pub(super) fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Total bytes of the `.tgz` files under `dir`.
fn archive_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "tgz")
        })
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// Prepares and times one run; returns the sample and, for modes that write every archive, their bytes.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_mode(
    mode: Mode,
    options: &BenchOptions,
    tools: &Path,
    bench_repo: &Path,
    out: &Path,
    corpus: &Corpus,
    time: bool,
) -> Result<(Sample, Option<u64>)> {
    match mode {
        Mode::DistTouch => {
            let sh = shell()?;
            sh.change_dir(bench_repo);
            let each = "{}";
            cmd!(sh, "find blox -exec touch -h {each} +")
                .quiet()
                .run()
                .map_err(|error| command_failed(error, BENCH_HELP))?;
        }
        Mode::DistOneFile => {
            let path = bench_repo.join(&corpus.changed_file);
            let name = corpus
                .changed_file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            write(
                &path,
                &format!(
                    "\"\"\"Benchmark block {}.\"\"\"\nREVISION = {}\n",
                    name.trim_start_matches("b_"),
                    crate::inputs::now_ns()
                ),
            )?;
        }
        _ => {}
    }
    if matches!(mode, Mode::DistTouch | Mode::DistOneFile) {
        // A file modified less than 20 ms before a build starts is "racy": that build cannot
        // trust its stat, so the next build hashes it again (see cache.rs). A person's edit is
        // seconds old when they run dist; without this untimed pause, each incremental mode would
        // also pay for the files the previous mode had just touched.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_path("create", parent)?;
    }
    let time_file = out.with_extension("time");
    // `env` runs what follows it: `/usr/bin/time` and its flags when it is there, else nothing.
    let timer: Vec<&std::ffi::OsStr> = if time {
        ["/usr/bin/time", "-f", "%e %U %S %M", "-o"]
            .iter()
            .map(std::ffi::OsStr::new)
            .chain([time_file.as_os_str()])
            .collect()
    } else {
        Vec::new()
    };
    let sh = shell()?;
    sh.change_dir(bench_repo);
    let command = match mode {
        Mode::DistCold
        | Mode::DistJobs(_)
        | Mode::DistNoop
        | Mode::DistTouch
        | Mode::DistOneFile => {
            let jobs = match mode {
                Mode::DistJobs(jobs) => jobs,
                _ => options.jobs,
            };
            let (xtask, jobs) = (&options.xtask, jobs.to_string());
            cmd!(
                sh,
                "env {timer...} {xtask} dist --json --jobs {jobs} --out {out}"
            )
        }
        Mode::Legacy | Mode::Gzip | Mode::Pigz => {
            let (name, jobs) = match mode {
                Mode::Legacy => ("legacy", "1"),
                Mode::Gzip => ("gzip", "1"),
                _ => ("pigz1", "2"),
            };
            let (pack, blox) = (tools.join("pack.sh"), bench_repo.join("blox"));
            cmd!(sh, "env {timer...} bash {pack} {name} {jobs} {blox} {out}")
        }
    };
    let started = Instant::now();
    let output = command
        .env_remove("SOURCE_DATE_EPOCH")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|error| command_failed(error, BENCH_HELP))?;
    let wall_s = started.elapsed().as_secs_f64();
    check_status(
        output.status.success(),
        &mode.name(),
        &String::from_utf8_lossy(&output.stderr),
    )?;

    let mut sample = Sample {
        wall_s,
        cpu_s: None,
        peak_rss_kib: None,
        rebuilt: None,
        skipped: None,
        tasks: None,
    };
    if time {
        let text = std::fs::read_to_string(&time_file).with_path("read", &time_file)?;
        // The last line: earlier ones may be "Command exited with non-zero status".
        let fields: Vec<&str> = text
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if let [_, user, system, rss] = fields[..] {
            sample.cpu_s = user
                .parse::<f64>()
                .ok()
                .zip(system.parse::<f64>().ok())
                .map(|(u, s)| u + s);
            sample.peak_rss_kib = rss.parse().ok();
        }
        let _ = std::fs::remove_file(&time_file);
    }
    if mode.name().starts_with("dist") {
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        sample.rebuilt = summary["rebuilt"].as_u64();
        sample.skipped = summary["skipped"].as_u64();
        let tasks = &summary["tasks"];
        sample.tasks = summary["seconds"]
            .as_f64()
            .zip(tasks["seconds"].as_f64())
            .zip(tasks["longest_s"].as_f64())
            .map(|((run_s, tasks_s), longest_s)| TaskTimes {
                run_s,
                tasks_s,
                longest_s,
                longest: tasks["longest"].as_str().unwrap_or_default().to_string(),
            });
    }
    let bytes = (!mode.is_incremental()).then(|| archive_bytes(out));
    Ok((sample, bytes))
}

fn check_status(success: bool, what: &str, stderr: &str) -> Result<()> {
    if success {
        return Ok(());
    }
    Err(Error::new(
        Diagnostic::error("bench-run", format!("`{what}` failed: {}", stderr.trim()))
            .help(BENCH_HELP),
    ))
}

const BENCH_HELP: &str = "the corpus may be damaged: remove target/bench and run again";
