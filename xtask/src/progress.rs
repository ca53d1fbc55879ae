//! Progress reporting handed down by `main`: a bar on a terminal, nothing otherwise.
//!
//! The library never prints; it calls these methods and the reporter decides what to show.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub trait Progress: Sync {
    /// The build starts: `packages` files from `bytes` bytes of sources.
    fn begin(&self, _packages: usize, _bytes: u64) {}
    /// A package is being built or checked.
    fn working(&self, _name: &str) {}
    /// `bytes` more of the sources are done.
    fn advance(&self, _bytes: u64) {}
    fn end(&self) {}
}

/// Reports nothing: for tests, `--json` and output that is not a terminal.
pub struct Silent;

impl Progress for Silent {}

/// An indicatif bar on stderr with bytes/s and the package being built.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar }
    }
}

impl Default for Bar {
    fn default() -> Bar {
        Bar::new()
    }
}

impl Progress for Bar {
    fn begin(&self, _packages: usize, bytes: u64) {
        self.bar.set_length(bytes);
    }

    fn working(&self, name: &str) {
        self.bar.set_message(name.to_string());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn end(&self) {
        self.bar.finish_and_clear();
    }
}
