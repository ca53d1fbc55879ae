//! `cargo xtask check`: every diagnostic, rendered on stderr or as JSON lines on stdout.

use std::path::Path;
use std::process::ExitCode;

use xtask::error::{Error, Severity};
use xtask::flags::CheckFlags;

pub fn run(flags: CheckFlags, _cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let diagnostics = match xtask::check::load(repo, &xtask::inputs::Inputs::new()) {
        Ok(checked) => checked.warnings,
        Err(error) => error.diagnostics,
    };
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if flags.json {
        for diagnostic in &diagnostics {
            println!("{}", diagnostic.to_json());
        }
    } else {
        for diagnostic in &diagnostics {
            eprint!("{diagnostic}");
        }
        let warnings = diagnostics.len() - errors;
        eprintln!("    Checked manifests: {errors} errors, {warnings} warnings");
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
