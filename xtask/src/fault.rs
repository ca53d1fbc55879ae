//! Test-only fault injection: named points in `build` and `output` where the crash tests stop a
//! run, so that every kill lands at a known place instead of at a random instant.
//!
//! Inert unless one of these environment variables is set (never set them outside tests):
//!
//! - `XTASK_CRASH_AT=<point>:<n>` — the `n`-th time (from 1) any thread reaches `<point>`, the
//!   process sends itself SIGKILL: no destructor, no cleanup, as when a user kills the build.
//! - `XTASK_FAIL_AT=<point>:<n>` — the `n`-th arrival returns an I/O error instead, as a full
//!   disk or an unreadable file would.
//!
//! The points, in the order a build reaches them: `scan` (all trees scanned), `hash` (a source
//! file hashed to compare with the previous build), `compress` (a chunk of compressed archive
//! written to its temporary file), `archive` (an archive's temporary file complete), `copy` (a file
//! package copied), `stage` (a tree file written to the staging directory), `staged` (everything
//! staged, nothing under a final name touched yet), `commit` (`SHA256SUMS` and `dist-manifest.json`
//! removed, before the first rename), `rename` (a file about to be renamed into place), `stale` (a
//! stale file about to be removed), `metadata` (`dist-manifest.json`, `SHA256SUMS`, then the cache
//! about to be renamed into place), `cleanup` (the staging directory about to be removed).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

struct Trigger {
    point: String,
    nth: usize,
    kill: bool,
    seen: AtomicUsize,
}

fn trigger() -> Option<&'static Trigger> {
    static TRIGGER: OnceLock<Option<Trigger>> = OnceLock::new();
    TRIGGER
        .get_or_init(|| {
            let (value, kill) = match std::env::var("XTASK_CRASH_AT") {
                Ok(value) => (value, true),
                Err(_) => (std::env::var("XTASK_FAIL_AT").ok()?, false),
            };
            let (point, nth) = value.rsplit_once(':')?;
            Some(Trigger {
                point: point.to_string(),
                nth: nth.parse().ok()?,
                kill,
                seen: AtomicUsize::new(0),
            })
        })
        .as_ref()
}

/// Marks a point of the build; see the module documentation. Returns an error only when
/// `XTASK_FAIL_AT` names this arrival.
pub fn point(name: &str) -> Result<()> {
    let Some(trigger) = trigger() else {
        return Ok(());
    };
    if trigger.point != name || trigger.seen.fetch_add(1, Ordering::SeqCst) + 1 != trigger.nth {
        return Ok(());
    }
    if trigger.kill {
        kill_self();
    }
    Err(Error::io(
        "continue at",
        std::path::Path::new(name),
        std::io::Error::other("failure injected by XTASK_FAIL_AT"),
    ))
}

#[cfg(unix)]
fn kill_self() -> ! {
    unsafe extern "C" {
        fn kill(pid: i32, signal: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    // SAFETY: kill(2) with our own pid; it does not return once the signal is delivered.
    unsafe {
        kill(std::process::id() as i32, SIGKILL);
    }
    std::process::abort()
}

#[cfg(not(unix))]
fn kill_self() -> ! {
    std::process::abort()
}
