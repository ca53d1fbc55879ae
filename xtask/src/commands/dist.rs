//! `cargo xtask dist`: the flags as `DistOptions`, then the warnings, `--timings` and the
//! summary line on stderr (or the summary as JSON on stdout).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use xtask::error::Error;
use xtask::flags::DistFlags;
use xtask::progress::{Bar, Progress, Silent};

use super::{human_bytes, say_waiting};

pub fn run(flags: DistFlags, cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let started = Instant::now();
    let options = xtask::DistOptions {
        out_dir: flags.out.map(|out| cwd.join(out)),
        jobs: flags.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        ),
        use_cache: !flags.no_cache,
        source_date_epoch: xtask::parse_source_date_epoch(
            std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        )?,
        wait: if flags.no_wait {
            xtask::output::Wait::Refuse
        } else {
            xtask::output::Wait::Block(say_waiting)
        },
    };
    let interactive = !flags.json && std::io::stderr().is_terminal();
    let progress: Box<dyn Progress> = if interactive {
        Box::new(Bar::new())
    } else {
        Box::new(Silent)
    };
    let report = xtask::dist(repo, &options, progress.as_ref())?;
    for warning in &report.warnings {
        eprint!("{warning}");
    }
    if flags.timings {
        for (stage, duration) in &report.timings {
            eprintln!("{:>10.1} ms  {stage}", duration.as_secs_f64() * 1000.0);
        }
    }
    let summary = &report.summary;
    let seconds = started.elapsed().as_secs_f64();
    if flags.json {
        let mut value = serde_json::to_value(summary).expect("the summary serializes");
        value["seconds"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
        value["fresh"] = serde_json::json!(report.fresh);
        value["peak_rss_kib"] = serde_json::json!(peak_rss_kib());
        let tasks = &report.tasks;
        value["tasks"] = serde_json::json!({
            "count": tasks.count,
            "seconds": tasks.total.as_secs_f64(),
            "longest_s": tasks.longest.as_secs_f64(),
            "longest": tasks.longest_name,
        });
        println!("{value}");
    } else {
        eprintln!(
            "    Finished {} resources, {} packages ({} built, {} unchanged), {} in {:.2}s -> {}",
            summary.resources,
            summary.packages,
            summary.rebuilt,
            summary.skipped,
            human_bytes(summary.bytes),
            seconds,
            summary
                .out_dir
                .strip_prefix(cwd)
                .unwrap_or(&summary.out_dir)
                .display(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// This process's peak resident set in KiB, as Linux counts it since the `exec` (`VmHWM`; a
/// parent's `wait4` would also count what the process was before it): `None` elsewhere.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?;
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}
