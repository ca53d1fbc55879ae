//! `cargo xtask`: reads the flags, calls the library, reports errors, chooses the exit code
//! (0 success, 1 bad input or a failed `verify`, 2 bad usage, 3 output directory locked by
//! another run with `--no-wait`).

mod commands;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use xtask::error::Error;
use xtask::flags::{Command, Xtask};

fn main() -> ExitCode {
    tune_malloc();
    let flags = match Xtask::try_parse() {
        Ok(flags) => flags,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let Some(command) = flags.command else {
        let _ = Xtask::command().print_help();
        return ExitCode::SUCCESS;
    };
    match run(command) {
        Ok(code) => code,
        Err(error) => {
            eprint!("{error}");
            let locked = error.diagnostics.iter().any(|d| d.code == "output-locked");
            ExitCode::from(if locked { 3 } else { 1 })
        }
    }
}

fn run(command: Command) -> Result<ExitCode, Error> {
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("read", std::path::Path::new("."), e))?;
    match command {
        Command::Import(flags) => return commands::import::run(flags, &cwd),
        Command::Release(flags) => return commands::release::release(&cwd, flags),
        Command::VerifyRelease(flags) => return commands::release::verify_release(&cwd, flags),
        _ => {}
    }
    let repo = xtask::find_repo(&cwd)?;
    match command {
        Command::Dist(flags) => commands::dist::run(flags, &cwd, &repo),
        Command::Deploy(flags) => commands::deploy::run(*flags, &cwd, &repo),
        Command::Run(flags) => commands::run::run(flags, &cwd, &repo),
        Command::Check(flags) => commands::check::run(flags, &cwd, &repo),
        Command::Bench(flags) => commands::bench::run(flags, &cwd, &repo),
        Command::New(flags) => commands::new::run(flags, &cwd, &repo),
        Command::Verify(flags) => commands::verify::run(flags, &cwd, &repo),
        Command::Import(_) | Command::Release(_) | Command::VerifyRelease(_) => {
            unreachable!("handled above: they find the repository themselves, if they need one")
        }
        Command::Graph(flags) => commands::graph::run(flags, &cwd, &repo),
    }
}

/// Two glibc malloc tunables, for peak memory (`cargo test memory_does_not_grow_with_file_size`
/// checks that it stays flat however large a file is).
///
/// glibc raises its mmap threshold each time a large block is freed, after which every archive's
/// buffers and compressor state come from the heap and fragment it: peak RSS then grows with the
/// size and number of archives. A fixed threshold keeps large buffers in their own mappings,
/// returned on free (the archive's segment buffers are kept for reuse instead, a bounded few:
/// `archive::Spare`). And one arena for every thread: what the scan's threads free can then serve
/// the main thread when it writes the output.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only changes a malloc tunable; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
