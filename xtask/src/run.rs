//! `cargo xtask run TOPOLOGY [--nodes A,B]`: brings the dist up to date with `dist()`, then
//! returns the node deployer's command that does the rest, for `main` to hand the process over
//! to (so that Ctrl-C reaches the deployer, which then stops the caretakers it started):
//!
//! - one node (no `--nodes`): `python3 <dist>/datablox/bin/deploy --home <homes>/local run
//!   TOPOLOGY`: deploys the home, runs every block on its caretaker;
//! - several: `python3 <dist>/datablox/bin/deploy place --topology TOPOLOGY --nodes A,B
//!   --homes-dir <homes> --run`: one home per node with its closure, then the placed topology.
//!
//! The run itself (start, master, stop) is the deployer's `datablox_deployer.run`, the same code
//! a deployed node runs with `deployer --home H run TOPOLOGY`.

use std::path::PathBuf;
use std::process::Command;

use crate::deploy::checked_launcher;
use crate::error::Result;
use crate::{DistOptions, DistReport, dist, progress::Progress};

/// The home of a one-node run, under the homes directory; the deployer names the node the same.
pub const LOCAL_NODE: &str = "local";

/// Options of `cargo xtask run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub dist: DistOptions,
    pub topology: PathBuf,
    /// Comma-separated node names; None: one node, every block on it.
    pub nodes: Option<String>,
    /// Where the homes go: `<homes_dir>/<node>/`.
    pub homes_dir: PathBuf,
    pub timeout: Option<f64>,
    pub json: bool,
}

/// Builds the dist and returns it with the deployer command that runs the topology.
pub fn prepare(
    repo: &std::path::Path,
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<(DistReport, Command)> {
    let report = dist(repo, &options.dist, progress)?;
    let launcher = checked_launcher(&report)?;
    let mut command = Command::new("python3");
    command.arg(launcher).env("PYTHONDONTWRITEBYTECODE", "1");
    match &options.nodes {
        None => {
            // `--flag=value` and `--` before the positional arguments: no path is read as an
            // option, whatever it starts with.
            let mut home = std::ffi::OsString::from("--home=");
            home.push(options.homes_dir.join(LOCAL_NODE));
            command.arg(home);
        }
        Some(nodes) => {
            let mut topology = std::ffi::OsString::from("--topology=");
            topology.push(&options.topology);
            let mut homes_dir = std::ffi::OsString::from("--homes-dir=");
            homes_dir.push(&options.homes_dir);
            command
                .arg("place")
                .arg(topology)
                .arg(format!("--nodes={nodes}"))
                .arg(homes_dir)
                .arg("--run");
        }
    }
    if let Some(timeout) = options.timeout {
        command.arg(format!("--timeout={timeout}"));
    }
    if options.json {
        command.arg("--json");
    }
    if options.nodes.is_none() {
        command.args(["--", "run"]).arg(&options.topology);
    }
    Ok((report, command))
}
