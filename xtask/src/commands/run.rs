//! `cargo xtask run`: `dist`, then the node deployer's `run` takes the process over (`exec`).

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Error;
use xtask::flags::RunFlags;
use xtask::progress::Silent;

use super::cached_dist;

pub fn run(flags: RunFlags, cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let options = xtask::run::RunOptions {
        dist: cached_dist(flags.dist.map(|out| cwd.join(out)))?,
        topology: cwd.join(flags.topology),
        nodes: flags.nodes,
        homes_dir: flags
            .homes_dir
            .map_or_else(|| repo.join("target").join("run"), |dir| cwd.join(dir)),
        timeout: flags.timeout,
        json: flags.json,
    };
    let (report, mut command) = xtask::run::prepare(repo, &options, &Silent)?;
    super::say_built(&report);
    // The deployer takes this process over: Ctrl-C reaches it alone, and it stops the
    // caretakers it started before it exits with the master's code.
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    Err(Error::new(
        xtask::error::Diagnostic::error(
            "python3",
            format!("cannot run the node deployer: {error}"),
        )
        .help(format!("the deployer needs {}", xtask::deploy::NODE_PYTHON)),
    ))
}
