//! One module a command, on the binary's side (the library never prints): each turns its flags
//! into the library's options, calls it, and prints what it reports.

pub mod bench;
pub mod check;
pub mod deploy;
pub mod dist;
pub mod graph;
pub mod import;
pub mod new;
pub mod release;
pub mod run;
pub mod verify;

/// The `dist` that `deploy` and `run` build first: the cache trusted, every core, waiting for
/// another writer of the output directory.
pub fn cached_dist(
    out_dir: Option<std::path::PathBuf>,
) -> Result<xtask::DistOptions, xtask::error::Error> {
    Ok(xtask::DistOptions {
        out_dir,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        use_cache: true,
        source_date_epoch: xtask::parse_source_date_epoch(
            std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        )?,
        wait: xtask::output::Wait::Block(say_waiting),
    })
}

/// Said once, on stderr, when a run has to wait for another (as cargo says it).
pub fn say_waiting(out_dir: &std::path::Path) {
    eprintln!(
        "    Blocking waiting for another `cargo xtask dist` to finish with `{}`",
        out_dir.display()
    );
}

/// What `deploy` and `run` say of the dist they built first, on stderr.
pub fn say_built(report: &xtask::DistReport) {
    for warning in &report.warnings {
        eprint!("{warning}");
    }
    let summary = &report.summary;
    eprintln!(
        "       Built {} packages ({} rebuilt, {} unchanged) -> {}",
        summary.packages,
        summary.rebuilt,
        summary.skipped,
        summary.out_dir.display()
    );
}

/// Bad usage found after parsing: the message on stderr as clap writes its own, exit code 2.
pub fn usage_error(message: &str) -> std::process::ExitCode {
    eprintln!("error: {message}");
    std::process::ExitCode::from(2)
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
