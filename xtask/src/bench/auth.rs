//! `cargo xtask bench`'s authentication rows: what the cluster key's handshake costs a connection,
//! and what tagging every frame costs a data connection carrying 10,000 records between two
//! caretakers' flows, against the same frames untagged (target: at most 10 % slower), the
//! receiving end in a process of its own as a node at the other end is. The measuring is
//! `ci/bench_auth.py`, run with the repository's `python/` on PYTHONPATH (its documentation says
//! what each figure times).

use std::path::Path;

use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use crate::error::{Diagnostic, Error, Result};

/// The script's JSON, as it prints it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AuthReport {
    pub rounds: u64,
    pub records: u64,
    pub batch: u64,
    pub frames: u64,
    pub connections: u64,
    pub connect_plain_ms: f64,
    pub connect_authenticated_ms: f64,
    pub handshake_ms: f64,
    pub plain_s: f64,
    pub authenticated_s: f64,
    pub plain_records_per_s: f64,
    pub authenticated_records_per_s: f64,
    /// Median over rounds of authenticated / plain seconds, each pair measured in one round.
    pub ratio: f64,
    /// The same ratio in CPU seconds of both ends.
    pub cpu_ratio: f64,
    /// CPU milliseconds of sealing and checking every frame's tag of one transfer, in one thread.
    pub tag_ms: f64,
    pub python: String,
}

/// Authenticated throughput may be at most this much slower than plain (paired ratio).
pub const RATIO_LIMIT: f64 = 1.10;

pub fn run(repo: &Path, rounds: usize, log: &mut dyn FnMut(&str)) -> Result<AuthReport> {
    log("authentication: handshakes and a data connection of 10,000 records (ci/bench_auth.py)");
    let sh = Shell::new().map_err(|e| error(format!("cannot run python3: {e}")))?;
    let script = repo.join("ci").join("bench_auth.py");
    // A transfer takes tens of milliseconds: at least 15 rounds, so the median holds on a busy machine.
    let rounds = rounds.max(15).to_string();
    let output = cmd!(sh, "python3 {script} --rounds {rounds} --records 10000")
        .env("PYTHONPATH", repo.join("python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| error(format!("cannot run python3: {e}")))?;
    if !output.status.success() {
        return Err(error(format!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        error(format!(
            "{} printed no report: {e}: {}",
            script.display(),
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    })
}

impl AuthReport {
    pub fn table(&self) -> String {
        format!(
            "authentication (Python {}, {} rounds; handshake over {} connections, {} records in {} frames of {} rows)\n\n\
             | mode | median | per second |\n|---|---|---|\n\
             | connect, plain | {:.3} ms | |\n\
             | connect and handshake | {:.3} ms | |\n\
             | data connection, plain frames | {:.4} s | {:.0} records |\n\
             | data connection, every frame authenticated | {:.4} s | {:.0} records |\n\n\
             | target | value | limit | met |\n|---|---|---|---|\n\
             | handshake cost per connection, ms | {:.3} | – | – |\n\
             | authenticated / plain data connection (paired) | {:.3} | {:.2} | {} |\n\
             authenticated / plain in CPU seconds of both ends (paired): {:.3}; \
             the tags alone (sealed and checked, one thread): {:.3} ms\n",
            self.python,
            self.rounds,
            self.connections,
            self.records,
            self.frames,
            self.batch,
            self.connect_plain_ms,
            self.connect_authenticated_ms,
            self.plain_s,
            self.plain_records_per_s,
            self.authenticated_s,
            self.authenticated_records_per_s,
            self.handshake_ms,
            self.ratio,
            RATIO_LIMIT,
            if self.ratio <= RATIO_LIMIT {
                "met"
            } else {
                "not met"
            },
            self.cpu_ratio,
            self.tag_ms,
        )
    }
}

fn error(message: String) -> Error {
    Error::new(Diagnostic::error("bench-auth", message).help(format!(
        "the authentication rows need {}",
        crate::deploy::NODE_PYTHON
    )))
}
