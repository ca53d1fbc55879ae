//! `cargo xtask bench`: generates the benchmark corpus, wraps it in a repository that `dist`
//! accepts, and times `dist` against the shell pipelines of `pack.sh`, side by side.
//!
//! Every mode runs once per round, in the same order (A B C A B C …), so ratios between modes
//! hold on a noisy machine. Each command runs under `/usr/bin/time`, which reports its peak RSS.
//! This module prints nothing: it reports progress through a callback and returns a `Report`,
//! which `main` prints as a table and writes as JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Diagnostic, Error, IoContext, Result};

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
    /// Threads of `dist` and of `gen_corpus.py`.
    pub jobs: usize,
}

/// One benchmarked command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    DistCold,
    Legacy,
    Gzip,
    Pigz,
    DistNoop,
    DistTouch,
    DistOneFile,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::DistCold => "dist, cold",
            Mode::Legacy => "legacy tar czf, 1 at a time",
            Mode::Gzip => "tar | gzip -n -6, 1 at a time",
            Mode::Pigz => "tar | pigz -p1 -n -6, 2 at a time",
            Mode::DistNoop => "dist, nothing changed",
            Mode::DistTouch => "dist, every file touched",
            Mode::DistOneFile => "dist, one file changed",
        }
    }

    fn is_shell(self) -> bool {
        matches!(self, Mode::Legacy | Mode::Gzip | Mode::Pigz)
    }

    fn is_incremental(self) -> bool {
        matches!(self, Mode::DistNoop | Mode::DistTouch | Mode::DistOneFile)
    }
}

/// One run of one mode.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub wall_s: f64,
    pub cpu_s: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// `rebuilt` and `skipped` of `dist --json`.
    pub rebuilt: Option<u64>,
    pub skipped: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub mode: String,
    pub median_wall_s: f64,
    pub min_wall_s: f64,
    pub max_wall_s: f64,
    pub median_cpu_s: Option<f64>,
    /// The largest peak RSS over the runs (for a pipeline: of its largest process).
    pub peak_rss_mib: Option<f64>,
    /// Total bytes of the archives written, for the modes that write them all.
    pub output_bytes: Option<u64>,
    /// Paired ratios: the median over rounds of this run's wall time over the other's.
    pub vs_legacy: Option<f64>,
    pub vs_best_shell: Option<f64>,
    pub vs_cold_dist: Option<f64>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub value: f64,
    pub limit: f64,
    pub met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Corpus {
    pub profile: String,
    pub seed: u64,
    pub blocks: usize,
    pub files: usize,
    pub bytes: u64,
    /// `__init__.py` and `b_<name>.py` files the bench added so that every block dir is a block.
    pub added_module_files: usize,
    pub repo: PathBuf,
    /// The file changed by the "one file changed" mode.
    pub changed_file: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: String,
    pub cores: usize,
    pub jobs: usize,
    pub runs: usize,
    pub corpus: Corpus,
    pub best_shell: String,
    /// `gzip -6` reference: the bytes of `tar | gzip -n -6`, per block, over the same files.
    pub gzip6_bytes: Option<u64>,
    pub dist_vs_gzip6_size: Option<f64>,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
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
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "xtask"])
        .current_dir(repo)
        .status()
        .with_path("run cargo in", repo)?;
    if !status.success() {
        return Err(Error::new(
            Diagnostic::error("bench-build", "`cargo build --release -p xtask` failed")
                .help("fix the build, or run `cargo run --release -p xtask -- bench`"),
        ));
    }
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

    let time = Path::new("/usr/bin/time").is_file();
    if !time {
        notes.push("`/usr/bin/time` is missing: no peak RSS or CPU times".into());
    }
    let mut modes = vec![Mode::DistCold, Mode::Legacy, Mode::Gzip];
    if which("pigz") {
        modes.push(Mode::Pigz);
    } else {
        notes.push("`pigz` is missing (`apt-get install -y pigz`): its row is skipped".into());
    }
    modes.extend([Mode::DistNoop, Mode::DistTouch, Mode::DistOneFile]);

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
        time,
    )?;
    log(&format!("first dist: {:.2}s", first.0.wall_s));

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); modes.len()];
    let mut output_bytes: Vec<Option<u64>> = vec![None; modes.len()];
    for round in 0..options.runs {
        for (index, &mode) in modes.iter().enumerate() {
            let out = if mode.is_incremental() {
                warm_out.clone()
            } else {
                outs.join(mode_dir(mode))
            };
            if !mode.is_incremental() {
                remove_dir(&out)?;
            }
            let (sample, bytes) =
                run_mode(mode, options, &tools, &bench_repo, &out, &corpus, time)?;
            log(&format!(
                "round {}/{}: {:<36} {:>8.3}s",
                round + 1,
                options.runs,
                mode.name(),
                sample.wall_s
            ));
            samples[index].push(sample);
            if bytes.is_some() {
                output_bytes[index] = bytes;
            }
        }
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
        notes,
    ))
}

fn mode_dir(mode: Mode) -> &'static str {
    match mode {
        Mode::DistCold => "dist-cold",
        Mode::Legacy => "legacy",
        Mode::Gzip => "gzip",
        Mode::Pigz => "pigz1",
        Mode::DistNoop | Mode::DistTouch | Mode::DistOneFile => "dist-warm",
    }
}

fn summarize(
    options: &BenchOptions,
    corpus: Corpus,
    modes: Vec<Mode>,
    samples: Vec<Vec<Sample>>,
    output_bytes: Vec<Option<u64>>,
    notes: Vec<String>,
) -> Report {
    let walls = |mode: Mode| -> Option<Vec<f64>> {
        modes
            .iter()
            .position(|m| *m == mode)
            .map(|i| samples[i].iter().map(|s| s.wall_s).collect())
    };
    let best_shell = modes
        .iter()
        .copied()
        .filter(|m| m.is_shell())
        .min_by(|a, b| {
            median(&walls(*a).unwrap_or_default())
                .total_cmp(&median(&walls(*b).unwrap_or_default()))
        })
        .unwrap_or(Mode::Legacy);
    let legacy = walls(Mode::Legacy);
    let best = walls(best_shell);
    let cold = walls(Mode::DistCold);
    let rows: Vec<Row> = modes
        .iter()
        .zip(&samples)
        .zip(&output_bytes)
        .map(|((&mode, samples), &bytes)| {
            let wall: Vec<f64> = samples.iter().map(|s| s.wall_s).collect();
            let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_s).collect();
            let rss = samples.iter().filter_map(|s| s.peak_rss_kib).max();
            let incremental = mode.is_incremental();
            Row {
                mode: mode.name().into(),
                median_wall_s: median(&wall),
                min_wall_s: wall.iter().copied().fold(f64::INFINITY, f64::min),
                max_wall_s: wall.iter().copied().fold(0.0, f64::max),
                median_cpu_s: (!cpu.is_empty()).then(|| median(&cpu)),
                peak_rss_mib: rss.map(|kib| kib as f64 / 1024.0),
                output_bytes: bytes,
                vs_legacy: legacy
                    .as_ref()
                    .filter(|_| !incremental)
                    .map(|l| paired(&wall, l)),
                vs_best_shell: best
                    .as_ref()
                    .filter(|_| !incremental)
                    .map(|b| paired(&wall, b)),
                vs_cold_dist: cold
                    .as_ref()
                    .filter(|_| incremental)
                    .map(|c| paired(&wall, c)),
                samples: samples.clone(),
            }
        })
        .collect();

    let row = |mode: Mode| rows.iter().find(|r| r.mode == mode.name());
    let gzip6_bytes = row(Mode::Gzip).and_then(|r| r.output_bytes);
    let dist_bytes = row(Mode::DistCold).and_then(|r| r.output_bytes);
    let dist_vs_gzip6_size = dist_bytes
        .zip(gzip6_bytes)
        .map(|(d, g)| d as f64 / g as f64);
    let mut targets = Vec::new();
    let mut target = |name: &str, value: Option<f64>, limit: f64| {
        if let Some(value) = value {
            targets.push(Target {
                target: name.into(),
                value,
                limit,
                met: value <= limit,
            });
        }
    };
    let cold_row = row(Mode::DistCold);
    target(
        "cold dist / legacy loop",
        cold_row.and_then(|r| r.vs_legacy),
        0.30,
    );
    target(
        "cold dist / best shell pipeline",
        cold_row.and_then(|r| r.vs_best_shell),
        0.65,
    );
    target(
        "no-op dist / cold dist",
        row(Mode::DistNoop).and_then(|r| r.vs_cold_dist),
        0.01,
    );
    target(
        "touched dist / cold dist",
        row(Mode::DistTouch).and_then(|r| r.vs_cold_dist),
        0.25,
    );
    target(
        "one-file dist / cold dist",
        row(Mode::DistOneFile).and_then(|r| r.vs_cold_dist),
        0.05,
    );
    let dist_rss = rows
        .iter()
        .filter(|r| r.mode.starts_with("dist"))
        .filter_map(|r| r.peak_rss_mib)
        .fold(None, |max: Option<f64>, v| {
            Some(max.map_or(v, |m| m.max(v)))
        });
    target("dist peak RSS, MiB", dist_rss, 64.0);
    target("dist bytes / gzip -6 bytes", dist_vs_gzip6_size, 1.02);

    Report {
        command: format!(
            "cargo xtask bench --profile {} --runs {}",
            options.profile, options.runs
        ),
        machine: machine(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        jobs: options.jobs,
        runs: options.runs,
        corpus,
        best_shell: best_shell.name().into(),
        gzip6_bytes,
        dist_vs_gzip6_size,
        rows,
        targets,
        notes,
    }
}

impl Report {
    /// The report as a Markdown table, with the targets and notes below it.
    pub fn table(&self) -> String {
        let mut text = format!(
            "{} ({} runs, {}); corpus: {} blocks, {} files, {:.1} MB\n\n",
            self.command,
            self.runs,
            self.machine,
            self.corpus.blocks,
            self.corpus.files,
            self.corpus.bytes as f64 / 1e6
        );
        text.push_str("| mode | wall s (median) | min–max | cpu s | peak RSS MiB | output bytes | vs legacy | vs best shell | vs cold dist |\n");
        text.push_str("|---|---|---|---|---|---|---|---|---|\n");
        let number = |value: Option<f64>, digits: usize| {
            value.map_or("".to_string(), |v| format!("{v:.digits$}"))
        };
        for row in &self.rows {
            let counts = match row.samples.last() {
                Some(Sample {
                    rebuilt: Some(rebuilt),
                    skipped: Some(skipped),
                    ..
                }) => {
                    format!(" ({rebuilt} built, {skipped} skipped)")
                }
                _ => String::new(),
            };
            text.push_str(&format!(
                "| {}{} | {:.3} | {:.3}–{:.3} | {} | {} | {} | {} | {} | {} |\n",
                // A `|` in a mode name would end the Markdown cell.
                row.mode.replace('|', "\\|"),
                counts,
                row.median_wall_s,
                row.min_wall_s,
                row.max_wall_s,
                number(row.median_cpu_s, 2),
                number(row.peak_rss_mib, 1),
                row.output_bytes.map_or(String::new(), thousands),
                number(row.vs_legacy, 3),
                number(row.vs_best_shell, 3),
                number(row.vs_cold_dist, 4),
            ));
        }
        text.push_str(&format!("\nbest shell pipeline: {}\n", self.best_shell));
        if let (Some(gzip), Some(ratio)) = (self.gzip6_bytes, self.dist_vs_gzip6_size) {
            text.push_str(&format!(
                "dist bytes vs gzip -6 ({}): {ratio:.4}\n",
                thousands(gzip)
            ));
        }
        text.push_str("\n| target | value | limit | met |\n|---|---|---|---|\n");
        for target in &self.targets {
            text.push_str(&format!(
                "| {} | {:.4} | {} | {} |\n",
                target.target,
                target.value,
                target.limit,
                if target.met { "yes" } else { "no" }
            ));
        }
        text.push('\n');
        for note in &self.notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text
    }
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// The median over rounds of `a[i] / b[i]`: each round's pair ran back to back, under the same load.
pub fn paired(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect();
    median(&ratios)
}

fn find_tools(repo: &Path, flag: Option<&Path>) -> Result<PathBuf> {
    let dir = match (flag, std::env::var_os(TOOLS_ENV)) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(dir)) => PathBuf::from(dir),
        (None, None) => repo.join("..").join("shared").join("bench"),
    };
    for tool in ["gen_corpus.py", "pack.sh"] {
        if !dir.join(tool).is_file() {
            return Err(Error::new(
                Diagnostic::error("bench-tools", format!("there is no `{}`", dir.join(tool).display())).help(format!(
                    "point `--corpus-tools DIR` or `{TOOLS_ENV}` at the directory holding gen_corpus.py and pack.sh"
                )),
            ));
        }
    }
    dir.canonicalize().with_path("read", &dir)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

const READY: &str = "corpus.ready";

/// Generates the corpus once per profile and seed, makes every block dir a block, and writes the
/// manifests and drivers around it.
fn prepare_corpus(
    repo: &Path,
    tools: &Path,
    work: &Path,
    options: &BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Corpus> {
    let bench_repo = work.join("repo");
    let blox = bench_repo.join("blox");
    let ready = work.join(READY);
    if !ready.is_file() {
        remove_dir(work)?;
        std::fs::create_dir_all(&bench_repo).with_path("create", &bench_repo)?;
        log(&format!(
            "generating the {} corpus (seed {}) in {}",
            options.profile,
            options.seed,
            bench_repo.display()
        ));
        let output = Command::new("python3")
            .arg(tools.join("gen_corpus.py"))
            .args([
                "--profile",
                &options.profile,
                "--seed",
                &options.seed.to_string(),
                "-j",
                &options.jobs.to_string(),
            ])
            .arg(&bench_repo)
            .stderr(Stdio::inherit())
            .output()
            .with_path("run", &tools.join("gen_corpus.py"))?;
        if !output.status.success() {
            return Err(Error::new(
                Diagnostic::error(
                    "bench-corpus",
                    format!("gen_corpus.py failed ({})", output.status),
                )
                .help(
                    "check the profile name (small, medium, large) and that python3 is installed",
                ),
            ));
        }
        log(String::from_utf8_lossy(&output.stdout).trim());
    }

    let mut block_dirs: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&blox).with_path("read", &blox)? {
        let entry = entry.with_path("read", &blox)?;
        if entry.file_type().with_path("read", &entry.path())?.is_dir() {
            block_dirs.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    block_dirs.sort();

    let manifests = bench_repo.join("manifests");
    std::fs::create_dir_all(&manifests).with_path("create", &manifests)?;
    write(&manifests.join("extension.toml"), EXTENSION_TOML)?;
    write(&manifests.join("datablox-framework.toml"), FRAMEWORK_TOML)?;
    let drivers = bench_repo.join("engage-extension").join("drivers");
    std::fs::create_dir_all(&drivers).with_path("create", &drivers)?;
    for driver in ["generic_blox_driver.py", "python_package_driver.py"] {
        let source = repo.join("engage-extension").join("drivers").join(driver);
        let bytes = std::fs::read(&source).unwrap_or_else(|_| {
            format!("# stand-in for {driver}, missing from the repository\n").into_bytes()
        });
        write(&drivers.join(driver), &String::from_utf8_lossy(&bytes))?;
    }

    for dir_name in &block_dirs {
        let Some((name, version)) = dir_name.split_once("__") else {
            return Err(Error::new(Diagnostic::error(
                "bench-corpus",
                format!("block dir `{dir_name}` is not named `<name>__<version>`"),
            )));
        };
        let display: Vec<String> = name.split('_').map(capitalize).collect();
        let manifest = format!(
            "[block]\nname = \"{}\"\nversion = \"{}\"\n",
            display.join("-"),
            version.replace('_', ".")
        );
        write(&manifests.join(format!("{name}.toml")), &manifest)?;
        for (module, content) in [
            ("__init__.py".to_string(), String::new()),
            (
                format!("b_{name}.py"),
                format!("\"\"\"Benchmark block {name}.\"\"\"\n"),
            ),
        ] {
            let path = blox.join(dir_name).join(module);
            if !path.exists() {
                write(&path, &content)?;
            }
        }
    }
    if !ready.is_file() {
        write(&ready, "ready\n")?;
    }

    let mut sizes = Vec::new();
    let (mut files, mut bytes) = (0, 0);
    for dir_name in &block_dirs {
        let (block_files, block_bytes) = dir_size(&blox.join(dir_name))?;
        files += block_files;
        bytes += block_bytes;
        sizes.push((block_bytes, dir_name.clone()));
    }
    sizes.sort();
    let (_, median_dir) = sizes.get(sizes.len() / 2).cloned().unwrap_or_default();
    let median_name = median_dir
        .split_once("__")
        .map_or(median_dir.as_str(), |(n, _)| n)
        .to_string();
    let changed_file = PathBuf::from("blox")
        .join(&median_dir)
        .join(format!("b_{median_name}.py"));
    Ok(Corpus {
        profile: options.profile.clone(),
        seed: options.seed,
        blocks: block_dirs.len(),
        files,
        bytes,
        added_module_files: count_added(&blox, &block_dirs)?,
        repo: bench_repo,
        changed_file,
    })
}

/// Module files the corpus generator does not write: those the bench added (now or on a run
/// before, since the corpus is reused).
fn count_added(blox: &Path, block_dirs: &[String]) -> Result<usize> {
    let mut count = 0;
    for dir_name in block_dirs {
        let name = dir_name
            .split_once("__")
            .map_or(dir_name.as_str(), |(n, _)| n);
        let path = blox.join(dir_name).join(format!("b_{name}.py"));
        let text = std::fs::read_to_string(&path).with_path("read", &path)?;
        if text.starts_with("\"\"\"Benchmark block") {
            count += 1;
            if std::fs::metadata(blox.join(dir_name).join("__init__.py"))
                .is_ok_and(|m| m.len() == 0)
            {
                count += 1;
            }
        }
    }
    Ok(count)
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

const EXTENSION_TOML: &str = r#"# Written by `cargo xtask bench` around the generated corpus.
[extension]
name = "datablox"
version = "1.0"
inside = ["ubuntu-linux 14.04"]

[[external]]
name = "ubuntu-linux"
versions = ["14.04"]
platform = true
"#;

const FRAMEWORK_TOML: &str = r#"# Written by `cargo xtask bench`: every block needs the framework; here it packages nothing.
[resource]
name = "datablox-framework"
version = "1.0"
manager = "python_package_driver"
package = { dummy = true }

[resource.input-ports.host]
genforma_home = "path"

[resource.output-ports.datablox_framework]
BLOXPATH = { type = "path", fixed-value = "${input_ports.host.genforma_home}/blox" }
"#;

fn write(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|existing| existing == text) {
        return Ok(());
    }
    std::fs::write(path, text).with_path("write", path)
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove", path, error))
        }
        _ => Ok(()),
    }
}

/// Regular files and their bytes under `dir`.
fn dir_size(dir: &Path) -> Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(|e| Error::io("read", dir, e.into()))?;
        if entry.file_type().is_file() {
            files += 1;
            bytes += entry
                .metadata()
                .map_err(|e| Error::io("read", entry.path(), e.into()))?
                .len();
        }
    }
    Ok((files, bytes))
}

/// Reads every file once, so the first timed mode does not pay for the disk.
fn warm(dir: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(|e| Error::io("read", dir, e.into()))?;
        if entry.file_type().is_file() {
            let mut file = std::fs::File::open(entry.path()).with_path("read", entry.path())?;
            std::io::copy(&mut file, &mut std::io::sink()).with_path("read", entry.path())?;
        }
    }
    Ok(())
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
fn run_mode(
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
            let status = Command::new("find")
                .args(["blox", "-exec", "touch", "-h", "{}", "+"])
                .current_dir(bench_repo)
                .status()
                .with_path("touch the files of", bench_repo)?;
            check_status(status.success(), "find blox -exec touch -h {} +", "")?;
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
                    crate::cache::now_ns()
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
    let mut command = if time {
        let mut command = Command::new("/usr/bin/time");
        command
            .args(["-f", "%e %U %S %M", "-o"])
            .arg(out.with_extension("time"));
        command
    } else {
        Command::new("env")
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_path("create", parent)?;
    }
    match mode {
        Mode::DistCold | Mode::DistNoop | Mode::DistTouch | Mode::DistOneFile => {
            command
                .arg(&options.xtask)
                .args([
                    "dist",
                    "--json",
                    "--jobs",
                    &options.jobs.to_string(),
                    "--out",
                ])
                .arg(out);
        }
        Mode::Legacy | Mode::Gzip | Mode::Pigz => {
            let (name, jobs) = match mode {
                Mode::Legacy => ("legacy", "1"),
                Mode::Gzip => ("gzip", "1"),
                _ => ("pigz1", "2"),
            };
            command
                .arg("bash")
                .arg(tools.join("pack.sh"))
                .args([name, jobs])
                .arg(bench_repo.join("blox"))
                .arg(out);
        }
    }
    command
        .current_dir(bench_repo)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null());
    let started = Instant::now();
    let output = command
        .output()
        .with_path("run a benchmark command in", bench_repo)?;
    let wall_s = started.elapsed().as_secs_f64();
    check_status(
        output.status.success(),
        mode.name(),
        &String::from_utf8_lossy(&output.stderr),
    )?;

    let mut sample = Sample {
        wall_s,
        cpu_s: None,
        peak_rss_kib: None,
        rebuilt: None,
        skipped: None,
    };
    if time {
        let time_file = out.with_extension("time");
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
            .help("the corpus may be damaged: remove target/bench and run again"),
    ))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0)
        });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} cores, {cpu}{memory}")
}

/// The corpus repository of `options` (generated on first use) and its work directory, for
/// benchmarks that live in other modules (`bench_deploy`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_paired_ratio() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(paired(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0]), 1.0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(133_387_651), "133,387,651");
    }

    #[test]
    fn display_names_from_dir_names() {
        let display: Vec<String> = "event_builder_19".split('_').map(capitalize).collect();
        assert_eq!(display.join("-"), "Event-Builder-19");
    }
}
