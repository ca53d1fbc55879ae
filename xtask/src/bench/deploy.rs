//! `cargo xtask bench`'s deploy modes: the node deployer (`python/datablox_deployer`) on the
//! bench corpus's dist, side by side with a shell loop over the same archives.
//!
//! - `deploy: every block, fresh home` — one deployer run installing every block (digests
//!   checked against SHA256SUMS, members checked, staged, renamed, recorded);
//! - `tar xzf loop` and `sha256sum -c + tar xzf loop` — the same archives extracted by the shell,
//!   without and with digest checks;
//! - `deploy: one block on demand, populated home` — the home of the first mode less one
//!   median block, which the deployer then installs (what the caretaker asks for on demand);
//! - `python3 -c pass` — the interpreter's start alone, the floor of every deployer run.
//!
//! Every mode runs the interpreter `python3` on PATH resolves to (`sys.executable`), as a node
//! runs it: a version manager's shim in front of it (pyenv's) would add its own start-up.
//!
//! Modes alternate within each round, like `bench`'s; the homes and outputs are removed
//! between runs, untimed. Prints nothing: progress goes through `log`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{BenchOptions, median, paired};
use crate::error::{Diagnostic, Error, IoContext, Result};

#[derive(Clone, Debug, Serialize)]
pub struct DeployRow {
    pub mode: String,
    pub wall_s: f64,
    /// Median user + system CPU seconds, children included (`wait4`), when measured.
    pub cpu_s: Option<f64>,
    pub min_s: f64,
    pub max_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeployReport {
    pub blocks: usize,
    pub archive_bytes: u64,
    pub rows: Vec<DeployRow>,
    /// Deploy of every block over the plain `tar xzf` loop, wall (target: at most 1.0): the
    /// median over rounds of the two measured in the same round, as `bench`'s ratios are.
    pub deploy_vs_tar_loop: f64,
    /// The same ratio in CPU seconds, when measured.
    pub deploy_vs_tar_loop_cpu: Option<f64>,
    /// Median seconds of the on-demand mode (target: at most 0.1).
    pub one_block_s: f64,
    pub notes: Vec<String>,
}

const MODES: [&str; 5] = [
    "deploy: every block, fresh home",
    "tar xzf loop",
    "sha256sum -c + tar xzf loop",
    "deploy: one block on demand, populated home",
    "python3 -c pass (interpreter start, for scale)",
];

pub fn run(repo: &Path, options: &BenchOptions, log: &mut dyn FnMut(&str)) -> Result<DeployReport> {
    let (corpus, work) = super::corpus(repo, options, log)?;
    let dist = work.join("out").join("deploy-dist");
    let sh = Shell::new().map_err(|e| shell_error(&e))?;
    sh.change_dir(&corpus.repo);
    let xtask = &options.xtask;
    let output = cmd!(sh, "{xtask} dist --out {dist}")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| shell_error(&e))?;
    if !output.status.success() {
        return Err(failure("dist of the bench corpus", &output.stderr));
    }
    let tree = dist.join("datablox");
    let sw = tree.join("sw_packages");
    let mut keys = Vec::new();
    let mut archive_bytes = 0;
    for entry in std::fs::read_dir(&sw).with_path("read", &sw)? {
        let entry = entry.with_path("read", &sw)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        archive_bytes += entry.metadata().with_path("read", &entry.path())?.len();
        if let Some((module, _)) = name.strip_suffix(".tgz").and_then(|n| n.split_once("__")) {
            keys.push(format!("{}@1.0", module.replace('_', "-")));
        }
    }
    keys.sort();
    let one = keys[keys.len() / 2].clone();
    let one_dir = format!("{}__1_0", one.trim_end_matches("@1.0").replace('-', "_"));

    // The interpreter itself, as a node runs it: a `python3` on PATH may be a version manager's
    // shim (pyenv's is a shell script that starts a dozen processes on every run).
    let code = "import sys; print(sys.executable)";
    let interpreter = cmd!(sh, "python3 -c {code}")
        .quiet()
        .read()
        .map_err(|e| shell_error(&e))?;
    let python3 = PathBuf::from(interpreter.trim());
    let runs_dir = work.join("out").join("deploy-runs");
    let home = runs_dir.join("home");
    let tar_out = runs_dir.join("tar");
    let python = repo.join("python");
    let pycache = work.join("out").join("deploy-pycache");
    // CPU seconds (user + system, children included) beside the wall time: on a loaded machine
    // they say more than wall times do.
    let timed = |command: xshell::Cmd, what: &str| -> Result<(f64, Option<f64>)> {
        let run = super::run::timed(command).map_err(|error| {
            let message = format!("cannot run {what}: {error}");
            Error::new(Diagnostic::error("bench-deploy", message).help(TOOLS_HELP))
        })?;
        if !run.output.status.success() {
            return Err(failure(what, &run.output.stderr));
        }
        Ok((run.wall_s, run.cpu_s))
    };
    let deployer = |tree: &Path, args: &[String]| -> Result<(f64, Option<f64>)> {
        let (home, python3) = (&home, &python3);
        let command = cmd!(
            sh,
            "{python3} -m datablox_deployer --home {home} --tree {tree} --platform ubuntu-linux 14.04 -- {args...}"
        )
        .env("PYTHONPATH", &python)
        // Bytecode cached as a home's own deployer caches it (whatever the caller's
        // PYTHONDONTWRITEBYTECODE), but outside the repository.
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env("PYTHONPYCACHEPREFIX", &pycache);
        timed(command, "the node deployer")
    };
    let shell = |script: &str| -> Result<(f64, Option<f64>)> {
        reset(&tar_out)?;
        std::fs::create_dir_all(&tar_out).with_path("create", &tar_out)?;
        let (sw, tar_out, dist) = (&sw, &tar_out, &dist);
        timed(
            cmd!(sh, "sh -c {script} sh {sw} {tar_out} {dist}"),
            "the shell loop",
        )
    };

    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    std::fs::create_dir_all(&runs_dir).with_path("create", &runs_dir)?;
    for round in 0..options.runs {
        for (index, mode) in MODES.iter().enumerate() {
            let (seconds, cpu) = match index {
                0 => {
                    reset(&home)?;
                    deployer(&tree, &keys)?
                }
                1 => shell(r#"for f in "$1"/*.tgz; do tar xzf "$f" -C "$2" || exit 1; done"#)?,
                2 => shell(
                    r#"(cd "$3" && sha256sum -c --quiet SHA256SUMS) || exit 1
                       for f in "$1"/*.tgz; do tar xzf "$f" -C "$2" || exit 1; done"#,
                )?,
                3 => {
                    forget_block(&home, &one, &one_dir)?;
                    deployer(&home.join("engage"), std::slice::from_ref(&one))?
                }
                _ => {
                    let python3 = &python3;
                    timed(cmd!(sh, "{python3} -c pass"), "python3")?
                }
            };
            log(&format!(
                "round {}/{}: {mode:<48} {seconds:>8.3}s wall {}",
                round + 1,
                options.runs,
                cpu.map_or(String::new(), |c| format!("{c:.2}s cpu"))
            ));
            samples[index].push(seconds);
            cpus[index].extend(cpu);
        }
    }
    reset(&runs_dir)?;
    let rows: Vec<DeployRow> = MODES
        .iter()
        .zip(&samples)
        .zip(&cpus)
        .map(|((mode, s), cpu)| DeployRow {
            mode: mode.to_string(),
            cpu_s: (!cpu.is_empty()).then(|| median(cpu)),
            wall_s: median(s),
            min_s: s.iter().copied().fold(f64::INFINITY, f64::min),
            max_s: s.iter().copied().fold(0.0, f64::max),
        })
        .collect();
    Ok(DeployReport {
        blocks: keys.len(),
        archive_bytes,
        deploy_vs_tar_loop: paired(&samples[0], &samples[1]),
        deploy_vs_tar_loop_cpu: (cpus[0].len() == samples[0].len()
            && cpus[1].len() == samples[1].len())
        .then(|| paired(&cpus[0], &cpus[1])),
        one_block_s: rows[3].wall_s,
        rows,
        notes: vec![
            format!(
                "deploy runs `{} -m datablox_deployer` (the code `datablox/bin/deploy` ships; `python3` on PATH resolved once, past any shim); wall times include Python's start",
                python3.display()
            ),
            format!("the on-demand mode installs `{one}` into a home holding every other block"),
        ],
    })
}

impl DeployReport {
    pub fn table(&self) -> String {
        let mut text = format!(
            "deploy modes: {} blocks, {:.1} MB of archives\n\n| mode | wall s (median) | min–max | cpu s (median) |\n|---|---|---|---|\n",
            self.blocks,
            self.archive_bytes as f64 / 1e6
        );
        for row in &self.rows {
            text.push_str(&format!(
                "| {} | {:.3} | {:.3}–{:.3} | {} |\n",
                row.mode,
                row.wall_s,
                row.min_s,
                row.max_s,
                row.cpu_s.map_or("–".to_string(), |c| format!("{c:.3}"))
            ));
        }
        text.push_str(&format!(
            "\n| target | value | limit | met |\n|---|---|---|---|\n| deploy every block / tar xzf loop (paired) | {:.3} | 1.0 | {} |\n| one block on demand, s | {:.3} | 0.1 | {} |\n\n",
            self.deploy_vs_tar_loop,
            if self.deploy_vs_tar_loop <= 1.0 { "yes" } else { "no" },
            self.one_block_s,
            if self.one_block_s <= 0.1 { "yes" } else { "no" },
        ));
        if let Some(ratio) = self.deploy_vs_tar_loop_cpu {
            text.push_str(&format!(
                "deploy every block / tar xzf loop in CPU seconds (paired): {ratio:.3}\n"
            ));
        }
        for note in &self.notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text
    }
}

/// Removes one block from a deployed home: its directory and its installed_resources.json entry.
fn forget_block(home: &Path, key: &str, dir: &str) -> Result<()> {
    reset(&home.join("blox").join(dir))?;
    let file = home.join("config").join("installed_resources.json");
    let text = std::fs::read_to_string(&file).with_path("read", &file)?;
    let mut instances: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
        Error::new(Diagnostic::error(
            "bench-deploy",
            format!("{}: {e}", file.display()),
        ))
    })?;
    let name = key.trim_end_matches("@1.0");
    instances.retain(|i| i["key"]["name"] != name);
    let json = serde_json::to_string_pretty(&instances).expect("JSON values serialize");
    std::fs::write(&file, json).with_path("write", &file)
}

fn reset(path: &PathBuf) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_path("remove", path)?;
    }
    Ok(())
}

fn shell_error(error: &xshell::Error) -> Error {
    Error::new(
        Diagnostic::error("bench-deploy", format!("cannot run a deploy mode: {error}"))
            .help(TOOLS_HELP),
    )
}

const TOOLS_HELP: &str = "the deploy modes need `python3`, `sh`, `tar` and `sha256sum` on PATH";

fn failure(what: &str, stderr: &[u8]) -> Error {
    Error::new(
        Diagnostic::error(
            "bench-deploy",
            format!("{what} failed:\n{}", String::from_utf8_lossy(stderr).trim()),
        )
        .help("run the same command by hand to see why"),
    )
}
