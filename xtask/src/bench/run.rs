//! The timed commands: `dist` in its modes and `pack.sh`'s pipelines, and the release build of
//! the `xtask` being timed. Every command is written with xshell's `cmd!` and run by `timed`,
//! which measures the command itself, with no timer process between: its wall time, and its CPU
//! time as `wait4` gives it. Peak RSS is `dist`'s own (`--json`'s `peak_rss_kib`): `wait4`'s
//! would count this process too, which the child was before its `exec`.

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
            cmd!(sh, "{xtask} dist --json --jobs {jobs} --out {out}")
        }
        Mode::Legacy | Mode::Gzip | Mode::Pigz => {
            let (name, jobs) = match mode {
                Mode::Legacy => ("legacy", "1"),
                Mode::Gzip => ("gzip", "1"),
                _ => ("pigz1", "2"),
            };
            let (pack, blox) = (tools.join("pack.sh"), bench_repo.join("blox"));
            cmd!(sh, "bash {pack} {name} {jobs} {blox} {out}")
        }
    };
    let run = timed(command.env_remove("SOURCE_DATE_EPOCH")).map_err(|error| {
        let message = format!("cannot run `{}`: {error}", mode.name());
        Error::new(Diagnostic::error("bench-run", message).help(BENCH_HELP))
    })?;
    check_status(
        run.output.status.success(),
        &mode.name(),
        &String::from_utf8_lossy(&run.output.stderr),
    )?;
    let output = run.output;
    let mut sample = Sample {
        wall_s: run.wall_s,
        cpu_s: run.cpu_s,
        peak_rss_kib: None,
        rebuilt: None,
        skipped: None,
        tasks: None,
    };
    if mode.name().starts_with("dist") {
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        sample.peak_rss_kib = summary["peak_rss_kib"].as_u64();
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

/// One command's run: what it printed, and what it cost.
pub(super) struct Timed {
    pub output: std::process::Output,
    /// From just before the command is started to when it has been waited for.
    pub wall_s: f64,
    /// User + system CPU seconds of the command and the children it waited for (`None` where
    /// `wait4` is not used: outside Linux with glibc).
    pub cpu_s: Option<f64>,
}

/// Runs `command` (stdin empty, stdout and stderr captured) and waits for it, timed.
pub(super) fn timed(command: xshell::Cmd<'_>) -> std::io::Result<Timed> {
    use std::io::Read;
    use std::process::Stdio;
    let mut command = std::process::Command::from(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn()?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut err = child.stderr.take().expect("piped");
    let reading = std::thread::spawn(move || err.read_to_end(&mut stderr).map(|_| stderr));
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut stdout)?;
    let stderr = reading.join().expect("reading a pipe does not panic")?;
    let (status, cpu_s) = wait(&mut child)?;
    let wall_s = started.elapsed().as_secs_f64();
    Ok(Timed {
        output: std::process::Output {
            status,
            stdout,
            stderr,
        },
        wall_s,
        cpu_s,
    })
}

/// Waits for `child`, with its CPU seconds, its waited-for children's included: what `wait4`
/// reports on Linux.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn wait(
    child: &mut std::process::Child,
) -> std::io::Result<(std::process::ExitStatus, Option<f64>)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: `pid` is our child, not yet waited for (`Child::wait` is never called on it);
    // `status` and `usage` are valid for writes.
    while unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } == -1 {
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    Ok((std::process::ExitStatus::from_raw(status), Some(cpu_s)))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn wait(
    child: &mut std::process::Child,
) -> std::io::Result<(std::process::ExitStatus, Option<f64>)> {
    Ok((child.wait()?, None))
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
