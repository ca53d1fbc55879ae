//! What a completed build leaves for the next one, in `<out>/.dist-state`: every input it
//! recorded (`inputs`), every output with its stat and SHA-256, what decided the output besides
//! the files (`Identity`), and what it reported. One file decides both whether nothing changed
//! (`State::fresh`, the no-op fast path) and what the next build may reuse (the recorder's
//! previous records; `output` and `build` look up outputs). How far it is trusted is written
//! out once, in docs/incremental.md.
//!
//! The file: the 16-byte magic `xtask-dist-state`, the format (u32, little-endian), the
//! SHA-256 of the body, then the body, `State` encoded by postcard (serde). A file that is
//! missing, of another format or damaged is ignored (a damaged one with a warning): the build
//! then reads and hashes everything, and writes the same bytes.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Diagnostic, Error, IoContext, Location, Result, Severity};
use crate::inputs::{Base, Input, Records, Stat};

pub const STATE_FILE: &str = ".dist-state";
const MAGIC: &[u8; 16] = b"xtask-dist-state";
/// Bumped whenever `State` changes shape: postcard's encoding does not describe itself.
const FORMAT: u32 = 2;
const HEADER: usize = 16 + 4 + 32;
/// Below this many records a thread, one more thread costs more than it saves.
const RECORDS_PER_THREAD: usize = 1024;

/// What decides the output besides the files: the running executable (a rebuilt xtask never
/// trusts another's state), `SOURCE_DATE_EPOCH`, where the repository and the output are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    exe: Option<Stat>,
    source_date_epoch: Option<u64>,
    repo: PathBuf,
    out_dir: PathBuf,
}

impl Identity {
    /// Taken when a run starts: an executable replaced while it runs is not the one recorded.
    pub fn current(repo: &Path, out_dir: &Path, source_date_epoch: Option<u64>) -> Identity {
        // `/proc/self/exe` is the running file even if its path was replaced since.
        let exe = std::fs::metadata("/proc/self/exe")
            .or_else(|_| std::env::current_exe().and_then(std::fs::metadata))
            .ok()
            .map(|m| Stat::from_metadata(&m));
        Identity {
            exe,
            source_date_epoch,
            repo: repo.to_path_buf(),
            out_dir: out_dir.to_path_buf(),
        }
    }
}

/// What a `dist` run did, printed as the last line (or as JSON with `--json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub resources: usize,
    /// Files in `sw_packages`.
    pub packages: usize,
    pub rebuilt: usize,
    pub skipped: usize,
    /// Bytes of `sw_packages`.
    pub bytes: u64,
    /// Bytes of the sources they were built from.
    pub source_bytes: u64,
    pub out_dir: PathBuf,
}

/// One file or directory of the output, relative to the output directory, as the build left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub path: String,
    /// `lstat` after the switch.
    pub stat: Stat,
    /// The SHA-256 (hex) of a file's bytes; empty for a directory.
    pub sha256: String,
    /// For an `sw_packages` file: what produced it.
    pub package: Option<Package>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The archive format, deflate backend, level and mtime (or `copy`).
    pub settings: String,
    pub source_digest: String,
}

/// A warning as recorded, to be printed again by a fresh run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Warning {
    severity: Severity,
    code: String,
    message: String,
    file: Option<PathBuf>,
    location: Option<Location>,
    help: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub identity: Option<Identity>,
    /// When the build that wrote it started, before it looked at any input (`now_ns`).
    pub started_ns: i64,
    /// Whether every input was recorded (a path that is not UTF-8 cannot be).
    pub complete: bool,
    pub summary: Option<Summary>,
    warnings: Vec<Warning>,
    /// As `Inputs::finish` left them.
    pub inputs: Records,
    /// Sorted by path.
    pub outputs: Vec<Output>,
    /// The SHA-256 of the body this state was read from.
    #[serde(skip)]
    read_digest: Option<[u8; 32]>,
}

/// What a fresh run reports: the summary and warnings of the build that recorded it.
#[derive(Debug)]
pub struct Fresh {
    pub summary: Summary,
    pub warnings: Vec<Diagnostic>,
}

impl State {
    /// The next state, assembled from what the build recorded and left.
    pub fn new(
        identity: Identity,
        started_ns: i64,
        (inputs, complete): (Records, bool),
        mut outputs: Vec<Output>,
        summary: Summary,
        warnings: &[Diagnostic],
    ) -> State {
        outputs.sort_by(|a, b| a.path.cmp(&b.path));
        State {
            identity: Some(identity),
            started_ns,
            complete,
            summary: Some(summary),
            warnings: warnings
                .iter()
                .map(|d| Warning {
                    severity: d.severity,
                    code: d.code.to_string(),
                    message: d.message.clone(),
                    file: d.file.clone(),
                    location: d.location.clone(),
                    help: d.help.clone(),
                })
                .collect(),
            inputs,
            outputs,
            read_digest: None,
        }
    }

    /// The state in `out_dir`, and a warning when it is damaged; an empty one when there is
    /// none, or one of another format.
    pub fn read(out_dir: &Path) -> (State, Option<Diagnostic>) {
        let path = out_dir.join(STATE_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return (State::default(), None);
        };
        match State::from_bytes(&bytes) {
            Ok(state) => (state, None),
            Err(false) => (State::default(), None),
            Err(true) => (
                State::default(),
                Some(
                    Diagnostic::warning(
                        "state-damaged",
                        format!(
                            "the build state `{}` is damaged; it is ignored and written again",
                            path.display()
                        ),
                    )
                    .file(&path)
                    .help("nothing to do: this build lists and hashes every source, as `--no-cache` does"),
                ),
            ),
        }
    }

    /// Decodes a state file; `Err(true)` when it is ours but damaged.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<State, bool> {
        if bytes.len() < HEADER || &bytes[..16] != MAGIC || bytes[16..20] != FORMAT.to_le_bytes() {
            return Err(false);
        }
        let body = &bytes[HEADER..];
        // Hashed while it is decoded (a large state is ~10 MB); used only once the hash matches.
        let (digest, decoded) = std::thread::scope(|scope| {
            let digest = scope.spawn(|| Sha256::digest(body));
            let decoded = postcard::from_bytes::<State>(body);
            (digest.join().expect("hashing does not panic"), decoded)
        });
        if digest.as_slice() != &bytes[20..HEADER] {
            return Err(true);
        }
        let mut state = decoded.map_err(|_| true)?;
        state.read_digest = Some(bytes[20..HEADER].try_into().expect("32 bytes"));
        Ok(state)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        self.encode(&mut bytes).expect("a state always encodes");
        bytes.into_inner()
    }

    /// Writes the file to `writer`: the header, then the body, encoded as it is written (a
    /// large state is never held twice), then the body's digest into the header.
    fn encode(&self, mut writer: impl Write + Seek) -> std::io::Result<()> {
        writer.write_all(MAGIC)?;
        writer.write_all(&FORMAT.to_le_bytes())?;
        writer.write_all(&[0; 32])?;
        let digest = self.digest(&mut writer)?;
        writer.seek(SeekFrom::Start(20))?;
        writer.write_all(&digest)?;
        writer.flush()
    }

    /// The SHA-256 of the body, written to `writer` as it is encoded.
    fn digest(&self, writer: impl Write) -> std::io::Result<[u8; 32]> {
        let hashing = Hashing {
            inner: writer,
            hasher: Sha256::new(),
            error: None,
        };
        // postcard writes a byte at a time: buffered before the hash.
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, hashing);
        let encoded = postcard::to_io(self, &mut buffered).map(drop);
        let flushed = buffered.flush();
        let hashing = buffered.into_parts().0;
        if let Some(error) = hashing.error {
            return Err(error);
        }
        encoded.map_err(std::io::Error::other).and(flushed)?;
        Ok(hashing.hasher.finalize().into())
    }

    /// The no-op fast path: `Some` when this state was written for `identity`, nothing it
    /// recorded is racy, and every input and output is as it recorded them (checked on up to
    /// `jobs` threads). Then its output, still on disk as it left it, is this run's output
    /// (the caller first makes sure that no other run is writing it: `output::in_progress`).
    pub fn fresh(&self, identity: &Identity, jobs: usize) -> Option<Fresh> {
        if !self.complete || self.identity.as_ref() != Some(identity) || identity.exe.is_none() {
            return None;
        }
        let (inputs_base, outputs_base) =
            (Base::open(&self.inputs.root), Base::open(&identity.out_dir));
        let changed = AtomicBool::new(false);
        // Each stops at the first difference it or another thread finds.
        let check_inputs = |inputs: &[Input]| {
            let same = inputs.iter().all(|input| {
                !changed.load(Ordering::Relaxed)
                    && !input.seen.stat().is_some_and(|s| s.racy(self.started_ns))
                    && input.seen.holds(&inputs_base, self.inputs.key(input))
            });
            changed.fetch_or(!same, Ordering::Relaxed);
        };
        let check_outputs = || {
            let same = self.outputs.iter().all(|output| {
                !changed.load(Ordering::Relaxed)
                    && outputs_base.stat(&output.path, false) == Some(output.stat)
            });
            changed.fetch_or(!same, Ordering::Relaxed);
        };
        let threads = jobs.clamp(1, 1 + self.inputs.iter().len() / RECORDS_PER_THREAD);
        std::thread::scope(|scope| {
            for part in self.inputs.chunks(threads) {
                scope.spawn(|| check_inputs(part));
            }
            check_outputs();
        });
        if changed.into_inner() {
            return None;
        }
        let summary = self.summary.as_ref()?;
        Some(Fresh {
            // Every package unchanged, as a full build would report.
            summary: Summary {
                rebuilt: 0,
                skipped: summary.packages,
                ..summary.clone()
            },
            warnings: self
                .warnings
                .iter()
                .map(|w| Diagnostic {
                    severity: w.severity,
                    // The few a fresh run prints live until it exits.
                    code: Box::leak(w.code.clone().into_boxed_str()),
                    message: w.message.clone(),
                    file: w.file.clone(),
                    location: w.location.clone(),
                    help: w.help.clone(),
                })
                .collect(),
        })
    }

    /// The output at `path` (relative to the output directory) as recorded, if its `lstat` now
    /// is the recorded one: then it holds the recorded bytes.
    pub fn output(&self, path: &str, now: &Stat) -> Option<&Output> {
        let index = self
            .outputs
            .binary_search_by(|output| output.path.as_str().cmp(path))
            .ok()?;
        let output = &self.outputs[index];
        (output.stat == *now).then_some(output)
    }

    /// Writes the state through `staging` and renames it into place, unless the file there
    /// already says the same (a no-op full build then writes nothing): the same records, none
    /// of them racy when they were recorded.
    pub fn write(mut self, previous: &State, out_dir: &Path, staging: &Path) -> Result<()> {
        let path = out_dir.join(STATE_FILE);
        let started_ns = self.started_ns;
        self.started_ns = previous.started_ns;
        let unchanged = previous.read_digest.is_some_and(|digest| {
            self.digest(std::io::sink()).ok() == Some(digest)
                && !self.inputs.iter().any(|input| {
                    input
                        .seen
                        .stat()
                        .is_some_and(|s| s.racy(previous.started_ns))
                })
        });
        if unchanged && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Ok(());
        }
        self.started_ns = started_ns;
        let temp = staging.join(STATE_FILE);
        let file = std::fs::File::create(&temp).with_path("create", &temp)?;
        self.encode(file).with_path("write", &temp)?;
        crate::fault::point("metadata")?;
        std::fs::rename(&temp, &path).with_path("rename into place", &path)
    }
}

/// A writer that hashes what it writes, and keeps the error its inner writer gave.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    error: Option<std::io::Error>,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.inner.write(bytes) {
            Ok(written) => {
                self.hasher.update(&bytes[..written]);
                Ok(written)
            }
            Err(error) => {
                let kind = error.kind();
                self.error = Some(error);
                Err(kind.into())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The records of the output as the switch left it: every file written or found intact
/// (`files`: path relative to `out_dir`, SHA-256, package), and every directory of the tree
/// `tree` (relative), so that a file added there by hand shows in its directory's stat.
pub fn outputs(
    out_dir: &Path,
    tree: &str,
    files: Vec<(String, String, Option<Package>)>,
) -> Result<Vec<Output>> {
    let mut outputs = Vec::with_capacity(files.len());
    for (path, sha256, package) in files {
        let full = out_dir.join(&path);
        let metadata = std::fs::symlink_metadata(&full).with_path("stat", &full)?;
        outputs.push(Output {
            path,
            stat: Stat::from_metadata(&metadata),
            sha256,
            package,
        });
    }
    let root = out_dir.join(tree);
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.map_err(|e| Error::io("read", &root, e.into()))?;
        if entry.file_type().is_dir()
            && let Ok(relative) = entry.path().strip_prefix(out_dir)
            && let Some(relative) = relative.to_str()
        {
            let metadata = entry
                .metadata()
                .map_err(|e| Error::io("stat", entry.path(), e.into()))?;
            outputs.push(Output {
                path: relative.to_string(),
                stat: Stat::from_metadata(&metadata),
                sha256: String::new(),
                package: None,
            });
        }
    }
    Ok(outputs)
}
