//! `cargo xtask bench`: the tables on stdout, progress on stderr, `--json` to a file.

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Error;
use xtask::flags::BenchFlags;

pub fn run(flags: BenchFlags, cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let mut log = |line: &str| eprintln!("{line}");
    let options = xtask::bench::BenchOptions {
        profile: flags.profile,
        seed: flags.seed,
        runs: flags.runs as usize,
        tools: flags.corpus_tools.map(|dir| cwd.join(dir)),
        // The deploy modes time the Python deployer; `dist` only prepares their input.
        xtask: if flags.deploy_only || flags.auth_only {
            std::env::current_exe().map_err(|e| Error::io("find", cwd, e))?
        } else {
            xtask::bench::xtask_binary(repo, &mut log)?
        },
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cold_compile: flags.cold_compile,
    };
    let mut json = serde_json::json!({});
    if !flags.deploy_only && !flags.auth_only {
        let report = xtask::bench::run(repo, &options, &mut log)?;
        println!("{}", report.table());
        json = serde_json::to_value(&report).expect("the report serializes");
    }
    if !flags.no_deploy && !flags.auth_only {
        let deploy = xtask::bench::deploy::run(repo, &options, &mut log)?;
        println!("{}", deploy.table());
        json["deploy"] = serde_json::to_value(&deploy).expect("the report serializes");
    }
    let auth = xtask::bench::auth::run(repo, options.runs, &mut log)?;
    println!("{}", auth.table());
    json["auth"] = serde_json::to_value(&auth).expect("the report serializes");
    if let Some(path) = flags.json {
        let path = cwd.join(path);
        let json = serde_json::to_string_pretty(&json).expect("the report serializes");
        std::fs::write(&path, json + "\n").map_err(|e| Error::io("write", &path, e))?;
    }
    Ok(ExitCode::SUCCESS)
}
