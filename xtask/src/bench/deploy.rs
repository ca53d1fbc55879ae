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
//! Modes alternate within each round, like `bench`'s; the homes and outputs are removed
//! between runs, untimed. Prints nothing: progress goes through `log`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{BenchOptions, median};
use crate::error::{Diagnostic, Error, IoContext, Result};

#[derive(Clone, Debug, Serialize)]
pub struct DeployRow {
    pub mode: String,
    pub wall_s: f64,
    pub min_s: f64,
    pub max_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeployReport {
    pub blocks: usize,
    pub archive_bytes: u64,
    pub rows: Vec<DeployRow>,
    /// Deploy of every block over the plain `tar xzf` loop (target: at most 1.0).
    pub deploy_vs_tar_loop: f64,
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

    let runs_dir = work.join("out").join("deploy-runs");
    let home = runs_dir.join("home");
    let tar_out = runs_dir.join("tar");
    let python = repo.join("python");
    let pycache = work.join("out").join("deploy-pycache");
    let deployer = |tree: &Path, args: &[String]| -> Result<f64> {
        let home = &home;
        let started = Instant::now();
        let output = cmd!(
            sh,
            "python3 -m datablox_deployer --home {home} --tree {tree} --platform ubuntu-linux 14.04 {args...}"
        )
        .env("PYTHONPATH", &python)
        // Bytecode cached as a home's own deployer caches it, outside the repository.
        .env("PYTHONPYCACHEPREFIX", &pycache)
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| shell_error(&e))?;
        let seconds = started.elapsed().as_secs_f64();
        if !output.status.success() {
            return Err(failure("the node deployer", &output.stderr));
        }
        Ok(seconds)
    };
    let shell = |script: &str| -> Result<f64> {
        reset(&tar_out)?;
        std::fs::create_dir_all(&tar_out).with_path("create", &tar_out)?;
        let (sw, tar_out, dist) = (&sw, &tar_out, &dist);
        let started = Instant::now();
        let output = cmd!(sh, "sh -c {script} sh {sw} {tar_out} {dist}")
            .quiet()
            .ignore_status()
            .output()
            .map_err(|e| shell_error(&e))?;
        let seconds = started.elapsed().as_secs_f64();
        if !output.status.success() {
            return Err(failure("the shell loop", &output.stderr));
        }
        Ok(seconds)
    };

    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    for round in 0..options.runs {
        for (index, mode) in MODES.iter().enumerate() {
            let seconds = match index {
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
                    let started = Instant::now();
                    cmd!(sh, "python3 -c pass")
                        .quiet()
                        .run()
                        .map_err(|e| shell_error(&e))?;
                    started.elapsed().as_secs_f64()
                }
            };
            log(&format!(
                "round {}/{}: {mode:<44} {seconds:>8.3}s",
                round + 1,
                options.runs
            ));
            samples[index].push(seconds);
        }
    }
    reset(&runs_dir)?;
    let rows: Vec<DeployRow> = MODES
        .iter()
        .zip(&samples)
        .map(|(mode, s)| DeployRow {
            mode: mode.to_string(),
            wall_s: median(s),
            min_s: s.iter().copied().fold(f64::INFINITY, f64::min),
            max_s: s.iter().copied().fold(0.0, f64::max),
        })
        .collect();
    Ok(DeployReport {
        blocks: keys.len(),
        archive_bytes,
        deploy_vs_tar_loop: rows[0].wall_s / rows[1].wall_s,
        one_block_s: rows[3].wall_s,
        rows,
        notes: vec![
            "deploy runs `python3 -m datablox_deployer` (the code `datablox/bin/deploy` ships); wall times include Python's start".into(),
            format!("the on-demand mode installs `{one}` into a home holding every other block"),
        ],
    })
}

impl DeployReport {
    pub fn table(&self) -> String {
        let mut text = format!(
            "deploy modes: {} blocks, {:.1} MB of archives\n\n| mode | wall s (median) | min–max |\n|---|---|---|\n",
            self.blocks,
            self.archive_bytes as f64 / 1e6
        );
        for row in &self.rows {
            text.push_str(&format!(
                "| {} | {:.3} | {:.3}–{:.3} |\n",
                row.mode, row.wall_s, row.min_s, row.max_s
            ));
        }
        text.push_str(&format!(
            "\n| target | value | limit | met |\n|---|---|---|---|\n| deploy every block / tar xzf loop | {:.3} | 1.0 | {} |\n| one block on demand, s | {:.3} | 0.1 | {} |\n\n",
            self.deploy_vs_tar_loop,
            if self.deploy_vs_tar_loop <= 1.0 { "yes" } else { "no" },
            self.one_block_s,
            if self.one_block_s <= 0.1 { "yes" } else { "no" },
        ));
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
            .help("the deploy modes need `python3`, `sh`, `tar` and `sha256sum` on PATH"),
    )
}

fn failure(what: &str, stderr: &[u8]) -> Error {
    Error::new(
        Diagnostic::error(
            "bench-deploy",
            format!("{what} failed:\n{}", String::from_utf8_lossy(stderr).trim()),
        )
        .help("run the same command by hand to see why"),
    )
}
