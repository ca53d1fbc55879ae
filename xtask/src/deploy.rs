//! `cargo xtask deploy`: brings the dist up to date with `dist()` (incremental: unchanged
//! packages are not rebuilt), then runs the node deployer that dist contains through xshell:
//! `python3 <dist>/datablox/bin/deploy --home DIR ...` for one home, or
//! `python3 <dist>/datablox/bin/deploy place --topology FILE --nodes A,B (--homes-dir DIR |
//! --bundle DIR | --ansible DIR)` for several nodes. There is one deployer, the Python one a
//! node runs (placement, bundles and the Ansible files are `datablox_deployer.placement`,
//! `.bundle` and `.ansible`); this command only builds what it deploys and hands over.

use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

use crate::error::{Diagnostic, Error, Result};
use crate::{DistOptions, DistReport, dist, plan, progress::Progress};

/// Options of `cargo xtask deploy`.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    pub dist: DistOptions,
    /// `--release ARCHIVE [--key PUB]`: deploy that release with the repository's deployer; no
    /// dist is built.
    pub release: Option<(PathBuf, Option<PathBuf>)>,
    pub target: Target,
    pub find_links: Option<PathBuf>,
    /// The cluster key to install (`--home`) or deliver to every node (`--topology`); by
    /// default the home keeps its own (or gets a new one) and a topology deploy keeps or makes
    /// `DIR/cluster.key`.
    pub key_file: Option<PathBuf>,
    /// `[name, version]`: the nodes' platform key, passed to the deployer (default: its own).
    pub platform: Option<Vec<String>>,
    /// With `start`: the caretaker's port and address.
    pub port: Option<u16>,
    pub listen: Option<String>,
    /// Keep what the home's last placement installed and this one does not need.
    pub keep: bool,
    pub dry_run: bool,
    pub json: bool,
}

/// Where `deploy` deploys.
#[derive(Clone, Debug)]
pub enum Target {
    /// One home; resources to deploy (`name version`, `name@version`, `name`), none: the
    /// caretaker's spec.
    Home {
        home: PathBuf,
        resources: Vec<String>,
    },
    /// A topology placed on several nodes (`deploy place`).
    Nodes {
        topology: PathBuf,
        /// Comma-separated node names, checked by the deployer.
        nodes: String,
        /// None: the plan only (`--dry-run`).
        out: Option<NodesOut>,
    },
}

/// What `deploy place` writes.
#[derive(Clone, Debug)]
pub enum NodesOut {
    /// `DIR/<node>/`: one deployment home per node on this machine.
    HomesDir(PathBuf),
    /// `DIR/<node>/`: one bundle per node.
    Bundle(PathBuf),
    /// `DIR/inventory.ini`, `DIR/site.yml`, `DIR/bundles/<node>.tar`: Ansible deploys the nodes
    /// (`datablox_deployer.ansible`).
    Ansible(PathBuf),
}

/// What the deployer printed and how it exited; `main` passes both on.
#[derive(Debug)]
pub struct Deployed {
    /// `None` with `--release`.
    pub dist: Option<DistReport>,
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The launcher `dist` writes into the tree.
pub fn launcher(out_dir: &Path) -> PathBuf {
    out_dir.join(plan::TREE).join("bin").join("deploy")
}

/// The dist's node deployer, after checking that it is there.
pub(crate) fn checked_launcher(report: &DistReport) -> Result<PathBuf> {
    let launcher = launcher(&report.summary.out_dir);
    if !launcher.is_file() {
        return Err(Error::new(
            Diagnostic::error(
                "no-deployer",
                format!("the dist has no node deployer at {}", launcher.display()),
            )
            .help(format!(
                "restore `{}` and `{}/`",
                plan::DEPLOYER_LAUNCHER,
                plan::DEPLOYER_PACKAGE
            )),
        ));
    }
    Ok(launcher)
}

pub fn deploy(repo: &Path, options: &DeployOptions, progress: &dyn Progress) -> Result<Deployed> {
    let (report, program) = match &options.release {
        // The deployer of this repository, from its sources (a release archive is checked
        // before anything in it runs).
        Some(_) => (
            None,
            vec![
                "-c".to_string(),
                FROM_SOURCES.to_string(),
                repo.join("python").display().to_string(),
            ],
        ),
        None => {
            let report = dist(repo, &options.dist, progress)?;
            let launcher = checked_launcher(&report)?;
            (Some(report), vec![launcher.display().to_string()])
        }
    };
    let sh = Shell::new().map_err(|e| shell_error(&e))?;
    let mut args: Vec<String> = Vec::new();
    if let Some((archive, key)) = &options.release {
        args.push(format!("--release={}", archive.display()));
        if let Some(key) = key {
            args.push(format!("--key={}", key.display()));
        }
    }
    match &options.target {
        Target::Home { home, .. } => {
            args.push(format!("--home={}", home.display()));
        }
        Target::Nodes {
            topology,
            nodes,
            out,
        } => {
            // `--flag=value`: a value is never read as an option, whatever it starts with.
            args.extend([
                "place".into(),
                format!("--topology={}", topology.display()),
                format!("--nodes={nodes}"),
            ]);
            if let Some(out) = out {
                let (flag, dir) = match out {
                    NodesOut::HomesDir(dir) => ("--homes-dir", dir),
                    NodesOut::Bundle(dir) => ("--bundle", dir),
                    NodesOut::Ansible(dir) => ("--ansible", dir),
                };
                args.push(format!("{flag}={}", dir.display()));
            }
        }
    }
    if let Some(port) = options.port {
        args.push(format!("--port={port}"));
    }
    if let Some(listen) = &options.listen {
        args.push(format!("--listen={listen}"));
    }
    if let Some(dir) = &options.find_links {
        args.push(format!("--find-links={}", dir.display()));
    }
    if let Some(file) = &options.key_file {
        args.push("--key-file".into());
        args.push(file.display().to_string());
    }
    if let Some(platform) = &options.platform {
        args.push("--platform".into());
        args.extend(platform.iter().cloned());
    }
    if options.keep {
        args.push("--keep".into());
    }
    if options.dry_run {
        args.push("--dry-run".into());
    }
    if options.json {
        args.push("--json".into());
    }
    if let Target::Home { resources, .. } = &options.target {
        // `--` ends the options: a resource argument is never read as one (`--tree=DIR`).
        args.push("--".into());
        args.extend(resources.iter().cloned());
    }
    let output = cmd!(sh, "python3 {program...} {args...}")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| shell_error(&e))?;
    Ok(Deployed {
        dist: report,
        // A deployer killed by a signal has no code: report it as a failure.
        exit_code: output.status.code().unwrap_or(1),
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

/// `python3 -c FROM_SOURCES PYTHON_DIR ARGS...` runs the deployer package in PYTHON_DIR.
const FROM_SOURCES: &str = "import sys; sys.path.insert(0, sys.argv.pop(1)); from datablox_deployer.cli import main; sys.exit(main())";

/// The Python a node needs (docs/archives.md): one whose tarfile has the `data` extraction filter.
pub const NODE_PYTHON: &str =
    "`python3` on PATH, CPython 3.12+, or 3.8.17+, 3.9.17+, 3.10.12+, 3.11.4+ (docs/archives.md)";

pub(crate) fn shell_error(error: &xshell::Error) -> Error {
    Error::new(
        Diagnostic::error("python3", format!("cannot run the node deployer: {error}"))
            .help(format!("the deployer needs {NODE_PYTHON}")),
    )
}
