//! `cargo xtask deploy`: `dist`, then the node deployer; its output and exit code handed on.

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Error;
use xtask::flags::DeployFlags;
use xtask::progress::Silent;

use super::{cached_dist, usage_error};

pub fn run(flags: DeployFlags, cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let options = xtask::deploy::DeployOptions {
        dist: cached_dist(flags.dist.map(|out| cwd.join(out)))?,
        target: match (flags.home, flags.topology) {
            (Some(home), _) => xtask::deploy::Target::Home {
                home: cwd.join(home),
                resources: flags.resources,
            },
            (None, Some(topology)) => xtask::deploy::Target::Nodes {
                topology: cwd.join(topology),
                nodes: flags.nodes.unwrap_or_default(),
                out: match (flags.homes_dir, flags.bundle, flags.ansible) {
                    (Some(dir), _, _) => Some(xtask::deploy::NodesOut::HomesDir(cwd.join(dir))),
                    (None, Some(dir), _) => Some(xtask::deploy::NodesOut::Bundle(cwd.join(dir))),
                    (None, None, Some(dir)) => {
                        Some(xtask::deploy::NodesOut::Ansible(cwd.join(dir)))
                    }
                    (None, None, None) if flags.dry_run => None,
                    (None, None, None) => {
                        return Ok(usage_error(
                            "deploy --topology needs --homes-dir DIR, --bundle DIR or --ansible DIR (or --dry-run for the plan only)",
                        ));
                    }
                },
            },
            (None, None) => unreachable!("clap requires --home or --topology"),
        },
        release: flags
            .release
            .map(|archive| (cwd.join(archive), flags.key.map(|key| cwd.join(key)))),
        find_links: flags.find_links.map(|dir| cwd.join(dir)),
        key_file: flags.key_file.map(|file| cwd.join(file)),
        platform: flags.platform,
        port: flags.port,
        listen: flags.listen,
        keep: flags.keep,
        dry_run: flags.dry_run,
        json: flags.json,
    };
    let deployed = xtask::deploy::deploy(repo, &options, &Silent)?;
    if let Some(dist) = &deployed.dist {
        super::say_built(dist);
    }
    use std::io::Write;
    let _ = std::io::stdout().write_all(&deployed.stdout);
    let _ = std::io::stderr().write_all(&deployed.stderr);
    // The deployer's own exit code: 0 done, 1 refused or failed, 2 bad usage.
    Ok(ExitCode::from(
        u8::try_from(deployed.exit_code).unwrap_or(1),
    ))
}
