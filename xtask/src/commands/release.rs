//! `cargo xtask release` and `verify-release`: what they print, and their exit codes (0 ok, 1 a
//! problem, listed).

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Result;
use xtask::flags::{ReleaseFlags, VerifyReleaseFlags};
use xtask::release::{self, verify};

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn release(cwd: &Path, flags: ReleaseFlags) -> Result<ExitCode> {
    let repo = xtask::find_repo(cwd)?;
    let options = release::ReleaseOptions {
        out_dir: flags.out.map_or_else(
            || repo.join("target").join("release-dist"),
            |out| cwd.join(out),
        ),
        sign_key: flags.sign_key.map(|key| cwd.join(key)),
        allow_dirty: flags.allow_dirty,
        tag: flags.tag,
        source_date_epoch: xtask::parse_source_date_epoch(
            std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        )?,
        jobs: jobs(),
    };
    let released = release::release(&repo, &options)?;
    let shown = released
        .out_dir
        .strip_prefix(cwd)
        .unwrap_or(&released.out_dir);
    for file in &released.files {
        eprintln!("       Wrote {}", shown.join(file).display());
    }
    eprintln!(
        "    Released {}{} ({} subjects{}{}), sha256 {} -> {}",
        release::PREFIX,
        released.version,
        released.subjects,
        if released.signed { ", signed" } else { "" },
        if released.dirty {
            ", from a dirty work tree"
        } else {
            ""
        },
        released.archive_sha256,
        shown.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify_release(cwd: &Path, flags: VerifyReleaseFlags) -> Result<ExitCode> {
    let options = verify::VerifyReleaseOptions {
        dir: cwd.join(flags.dir),
        key: flags.key.map(|key| cwd.join(key)),
        rebuild: if flags.rebuild {
            Some(xtask::find_repo(cwd)?)
        } else {
            None
        },
        jobs: jobs(),
    };
    let report = verify::verify_release(&options)?;
    for problem in &report.problems {
        eprint!("{problem}");
    }
    if let Some(diffoscope) = &report.diffoscope {
        eprintln!("{diffoscope}");
    }
    let shown = options
        .dir
        .strip_prefix(cwd)
        .unwrap_or(&options.dir)
        .display();
    if !report.problems.is_empty() {
        eprintln!(
            "    Verify found {} problems in the release in {shown}",
            report.problems.len()
        );
        return Ok(ExitCode::from(1));
    }
    let signature = if report.signature_verified {
        "signature verified"
    } else {
        "signature not checked (no --key)"
    };
    eprintln!(
        "    Verified {}{}: {} subjects, {signature}{} in {shown}",
        release::PREFIX,
        report.version,
        report.subjects,
        if report.rebuilt {
            ", rebuilt byte for byte"
        } else {
            ""
        },
    );
    Ok(ExitCode::SUCCESS)
}
