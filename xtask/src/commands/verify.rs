//! `cargo xtask verify`: each difference, then a summary line (or JSON on stdout).

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Error;
use xtask::flags::VerifyFlags;

use super::say_waiting;

pub fn run(flags: VerifyFlags, cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let out_dir = xtask::out_dir(repo, flags.out.map(|out| cwd.join(out)).as_deref());
    let report = xtask::verify::verify(repo, &out_dir, xtask::output::Wait::Block(say_waiting))?;
    if flags.json {
        let mut value = serde_json::to_value(&report).expect("the report serializes");
        value["ok"] = serde_json::json!(report.differences.is_empty());
        println!("{value}");
    } else {
        for difference in &report.differences {
            eprintln!("error: {}: {}", difference.path, difference.problem);
        }
        let shown = report
            .out_dir
            .strip_prefix(cwd)
            .unwrap_or(&report.out_dir)
            .display();
        if report.differences.is_empty() {
            eprintln!(
                "    Verified {} packages and {} files of the extension tree in {shown}",
                report.packages, report.tree_files
            );
        } else {
            eprintln!(
                "    Verify found {} differences in {shown}; `cargo xtask dist` rebuilds what differs (`--no-cache` if a package was damaged in place)",
                report.differences.len()
            );
        }
    }
    Ok(if report.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
