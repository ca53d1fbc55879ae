//! `cargo xtask import`: what was written, replaced and skipped, on stderr. `import` may create
//! the repository, so it does not look for one first.

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Error;
use xtask::flags::ImportFlags;

pub fn run(flags: ImportFlags, cwd: &Path) -> Result<ExitCode, Error> {
    let into_text = flags.into.as_ref().map(|into| into.display().to_string());
    let target = match flags.into {
        Some(into) => cwd.join(into),
        None => xtask::find_repo(cwd).unwrap_or_else(|_| cwd.to_path_buf()),
    };
    let options = xtask::import::ImportOptions {
        legacy: cwd.join(flags.legacy),
        blox: flags.blox.map(|b| cwd.join(b)),
        target,
        sources: flags
            .sources
            .into_iter()
            .map(|(name, dir)| (name, cwd.join(dir)))
            .collect(),
        force: flags.force,
    };
    let report = xtask::import::import(&options)?;
    for warning in &report.warnings {
        eprint!("{warning}");
    }
    for file in &report.written {
        let verb = if report.replaced.contains(file) {
            "Replaced"
        } else {
            "Wrote"
        };
        eprintln!("{verb:>12} {}", file.display());
    }
    eprintln!(
        "    Imported {} of {} resources, skipped {}, {} warnings ({} files written, {} replaced, {} unchanged)",
        report.imported.len(),
        report.keys_read,
        report.skipped.len(),
        report.warnings.len(),
        report.written.len(),
        report.replaced.len(),
        report.unchanged
    );
    if !report.skipped.is_empty() {
        let skipped: Vec<String> = report.skipped.iter().map(|k| format!("`{k}`")).collect();
        eprintln!("     Skipped {}", skipped.join(", "));
    }
    match into_text {
        Some(into) => eprintln!("Next: cd {into}, then cargo xtask check and cargo xtask dist"),
        None => eprintln!("Next: cargo xtask check, then cargo xtask dist"),
    }
    Ok(ExitCode::SUCCESS)
}
