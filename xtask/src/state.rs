//! What a completed build leaves for the next one, in `<out>/.dist-state`: every input it
//! recorded (`inputs`), every output with its stat and SHA-256, what decided the output besides
//! the files (`Identity`), and what it reported. One file decides both whether nothing changed
//! (`State::fresh`, the no-op fast path) and what the next build may reuse (the recorder's
//! previous records; `output` and `build` look up outputs). How far it is trusted is written
//! out once, in docs/incremental.md.
//!
//! The file: the magic `xtask-dist-state`, the format (u32, little-endian), the CRC-32 of the
//! body (gzip's, little-endian: it tells damage, as in a gzip member; nothing here is a secret
//! or a signature), then the body, by postcard (serde): the `Head`, then every record and output
//! (`Check`) in chunks of `CHUNK`, each after its length (u32), which threads decode and check on
//! their own. A file that is missing, of another format or damaged is ignored (a damaged one with
//! a warning): the build then reads and hashes everything, and writes the same bytes. It is read
//! mapped (`map`): the fast path's time is mostly stats, and a copy of the file would be the
//! largest part of the rest.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Diagnostic, IoContext, Result};
use crate::inputs::{Records, Seen};
use crate::stat::{Anchored, Base, Stat};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = ".dist-state";
const MAGIC: &[u8; 16] = b"xtask-dist-state";
/// Bumped whenever the encoding changes: postcard's does not describe itself.
const FORMAT: u32 = 4;
/// Where the header holds the body's CRC-32.
pub const CHECKSUM: std::ops::Range<usize> = 20..24;
const HEADER: usize = CHECKSUM.end;
/// Checks in a chunk: a thread's share is many chunks, so the threads' shares balance.
const CHUNK: usize = 512;

/// The body begins with the identity, when the build started, whether it is complete, the
/// summary, the warnings and the records' root.
type Head = (
    (Option<Identity>, i64, bool, Option<Summary>),
    Vec<Diagnostic>,
    PathBuf,
);

/// One record (its key, relative to the records' root or absolute, as postcard encodes a `str`:
/// the fast path uses its bytes unchecked, `decode` checks they are UTF-8), or one output.
#[derive(Serialize, Deserialize)]
enum Check<'a> {
    Input(
        #[serde(borrow, serialize_with = "as_bytes")] &'a [u8],
        Cow<'a, Seen>,
    ),
    Output(Cow<'a, Output>),
}

fn as_bytes<S: serde::Serializer>(bytes: &&[u8], to: S) -> std::result::Result<S::Ok, S::Error> {
    to.serialize_bytes(bytes)
}

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
    /// Its `lstat`: taken after the switch, or when it was found intact if left in place.
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub identity: Option<Identity>,
    /// When the build that wrote it started, before it looked at any input (`now_ns`).
    pub started_ns: i64,
    /// Whether every input was recorded (a path that is not UTF-8 cannot be).
    pub complete: bool,
    pub summary: Option<Summary>,
    warnings: Vec<Diagnostic>,
    /// As `Inputs::finish` left them.
    pub inputs: Records,
    /// Sorted by path.
    pub outputs: Vec<Output>,
    /// The CRC-32 of the body this state was read from.
    read_checksum: Option<u32>,
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
            warnings: warnings.to_vec(),
            inputs,
            outputs,
            read_checksum: None,
        }
    }

    /// The state in `out_dir`, and a warning when it is damaged; an empty one when there is
    /// none, or one of another format.
    pub fn read(out_dir: &Path) -> (State, Option<Diagnostic>) {
        let path = out_dir.join(STATE_FILE);
        let Some(bytes) = map(&path) else {
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
        let (body, checksum) = body(bytes).ok_or(false)?;
        if crc32fast::hash(body) != checksum {
            return Err(true);
        }
        let mut state = decode(body).ok_or(true)?;
        state.read_checksum = Some(checksum);
        Ok(state)
    }

    /// The file: the header, then the body (see the module's comment).
    pub fn to_bytes(&self) -> Vec<u8> {
        let checks = self.checks();
        [self.header(self.started_ns, &checks), checks].concat()
    }

    /// The file's header and head, with `started_ns` in its head, for `checks`
    /// (`State::checks`) to follow: the rest of the file, checksummed here, not copied.
    fn header(&self, started_ns: i64, checks: &[u8]) -> Vec<u8> {
        let head = (&self.identity, started_ns, self.complete, &self.summary);
        let head = postcard::to_allocvec(&(head, &self.warnings, &self.inputs.root));
        let head = head.expect("a state always encodes");
        let mut checksum = crc32fast::Hasher::new();
        checksum.update(&head);
        checksum.update(checks);
        let checksum = checksum.finalize().to_le_bytes();
        [&MAGIC[..], &FORMAT.to_le_bytes(), &checksum, &head].concat()
    }

    /// Every record and output in chunks of `CHUNK`, each after its length: the body but its head.
    fn checks(&self) -> Vec<u8> {
        let records = &self.inputs;
        let inputs = records
            .iter()
            .map(|input| Check::Input(records.key(input).as_bytes(), Cow::Borrowed(&input.seen)));
        let outputs = self.outputs.iter().map(|o| Check::Output(Cow::Borrowed(o)));
        let (mut bytes, mut start) = (Vec::new(), 0);
        for (index, check) in inputs.chain(outputs).enumerate() {
            if index % CHUNK == 0 {
                start = bytes.len();
                bytes.extend([0; 4]);
            }
            bytes = postcard::to_extend(&check, bytes).expect("a state always encodes");
            let len = (bytes.len() - start - 4) as u32;
            bytes[start..start + 4].copy_from_slice(&len.to_le_bytes());
        }
        bytes
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
    pub fn write(self, previous: &State, out_dir: &Path, staging: &Path) -> Result<()> {
        let path = out_dir.join(STATE_FILE);
        // Encoded once: the head alone differs between this state and the one compared with.
        let checks = self.checks();
        // The outputs, summary and warnings first: when a package changed, they do. A false match
        // of the CRC (one in 2^32) keeps older records, still true of the stats they hold.
        let unchanged = previous.read_checksum.is_some_and(|recorded| {
            (&self.outputs, &self.summary, &self.warnings)
                == (&previous.outputs, &previous.summary, &previous.warnings)
                && !(self.inputs.iter().filter_map(|input| input.seen.stat()))
                    .any(|stat| stat.racy(previous.started_ns))
                && self.header(previous.started_ns, &checks)[CHECKSUM] == recorded.to_le_bytes()
        });
        if unchanged && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Ok(());
        }
        let temp = staging.join(STATE_FILE);
        let header = self.header(self.started_ns, &checks);
        File::create(&temp)
            .and_then(|mut file| {
                file.write_all(&header)?;
                file.write_all(&checks)
            })
            .with_path("write", &temp)?;
        crate::fault::point("metadata")?;
        std::fs::rename(&temp, &path).with_path("rename into place", &path)
    }
}

/// The state file at `path`, mapped; `None` when it cannot be opened or mapped (missing, or a
/// directory).
fn map(path: &Path) -> Option<memmap2::Mmap> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: `dist` never writes a state file in place: `State::write` renames a new one over
    // it, and the mapping keeps the old file's pages. Only another program writing into this
    // private file while it is read could change the bytes under the decoder, which bounds-checks
    // every read and then finds the checksum wrong (truncating it would end the run with SIGBUS,
    // as with any mapped file).
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }.ok()
}

/// The body of a state file of this format, and the CRC-32 its header gives.
fn body(bytes: &[u8]) -> Option<(&[u8], u32)> {
    let format = bytes.get(16..20)?;
    let checksum = u32::from_le_bytes(bytes.get(CHECKSUM)?.try_into().ok()?);
    (&bytes[..16] == MAGIC && format == FORMAT.to_le_bytes()).then(|| (&bytes[HEADER..], checksum))
}

/// The head of `body` and its chunks of checks; `None` if either is cut short.
fn split(body: &[u8]) -> Option<(Head, Vec<&[u8]>)> {
    let (head, mut rest) = postcard::take_from_bytes(body).ok()?;
    let mut chunks = Vec::new();
    while let Some((len, after)) = rest.split_first_chunk::<4>() {
        let (chunk, after) = after.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        chunks.push(chunk);
        rest = after;
    }
    rest.is_empty().then_some((head, chunks))
}

/// The check encoded at the start of `chunk`, which then begins after it.
fn take<'a>(chunk: &mut &'a [u8]) -> Option<Check<'a>> {
    let (check, rest) = postcard::take_from_bytes(chunk).ok()?;
    *chunk = rest;
    Some(check)
}

fn decode(body: &[u8]) -> Option<State> {
    let (((identity, started_ns, complete, summary), warnings, root), chunks) = split(body)?;
    // Room for every record at once (memory): pages never written are never used.
    let mut inputs = Records::with_capacity(&root, chunks.len() * CHUNK, body.len());
    let mut outputs = Vec::new();
    for mut chunk in chunks {
        while !chunk.is_empty() {
            match take(&mut chunk)? {
                Check::Input(key, seen) => {
                    inputs.push(std::str::from_utf8(key).ok()?, seen.into_owned())
                }
                Check::Output(output) => outputs.push(output.into_owned()),
            }
        }
    }
    Some(State {
        identity,
        started_ns,
        complete,
        summary,
        warnings,
        inputs,
        outputs,
        read_checksum: None,
    })
}

/// The no-op fast path: the summary and warnings to report when the state in `out_dir` was
/// written for `identity`, nothing it recorded is racy, and every input and output is as it
/// recorded them. Its chunks are decoded
/// and checked on up to `jobs` threads, while one of them hashes the body first. Then its
/// output, still on disk as it left it, is this run's output (the caller first makes sure that
/// no other run is writing it: `output::in_progress`).
pub fn fresh(
    out_dir: &Path,
    identity: &Identity,
    jobs: usize,
) -> Option<(Summary, Vec<Diagnostic>)> {
    let bytes = map(&out_dir.join(STATE_FILE))?;
    let (body, checksum) = body(&bytes)?;
    let (((recorded, started_ns, complete, summary), warnings, root), chunks) = split(body)?;
    if !complete || recorded.as_ref() != Some(identity) || identity.exe.is_none() {
        return None;
    }
    let (inputs, outputs) = (Base::open(&root), Base::open(&identity.out_dir));
    let (changed, next) = (AtomicBool::new(false), AtomicUsize::new(0));
    let holds = |mut chunk: &[u8]| {
        let (mut inputs, mut outputs) = (Anchored::new(&inputs), Anchored::new(&outputs));
        while !chunk.is_empty() && !changed.load(Ordering::Relaxed) {
            let same = match take(&mut chunk) {
                Some(Check::Input(key, seen)) => {
                    let (base, key) = inputs.split(key);
                    !seen.stat().is_some_and(|s| s.racy(started_ns)) && seen.holds(base, key)
                }
                Some(Check::Output(output)) => {
                    let (base, path) = outputs.split(output.path.as_bytes());
                    base.stat(path, false) == Some(output.stat)
                }
                None => false,
            };
            if !same {
                return false;
            }
        }
        true
    };
    // Each thread takes the next task (the hash, then each chunk) until one finds a difference.
    let work = || {
        while !changed.load(Ordering::Relaxed) {
            let same = match next.fetch_add(1, Ordering::Relaxed) {
                0 => crc32fast::hash(body) == checksum,
                task if task <= chunks.len() => holds(chunks[task - 1]),
                _ => return,
            };
            changed.fetch_or(!same, Ordering::Relaxed);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..jobs.clamp(1, 1 + chunks.len()) {
            scope.spawn(work);
        }
        if jobs > 1 {
            crate::sched::make_room();
        }
        work();
    });
    let mut summary = summary.filter(|_| !changed.into_inner())?;
    // Every package unchanged, as a full build would report.
    (summary.rebuilt, summary.skipped) = (0, summary.packages);
    Some((summary, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Inputs;

    /// Every kind of record, an output and a warning survive the file, and the fast path holds
    /// until a recorded file changes.
    #[test]
    fn a_state_reads_back_as_written_and_is_fresh_until_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, out) = (dir.path().join("repo"), dir.path().join("out"));
        std::fs::create_dir_all(repo.join("d/e")).unwrap();
        std::fs::create_dir_all(out.join("t/u")).unwrap();
        std::fs::write(out.join("t/u/v"), "deep output").unwrap();
        std::fs::write(repo.join("d/f"), "bytes").unwrap();
        // Below two directories: stat'ed relative to `d/e`.
        std::fs::write(repo.join("d/e/g"), "more bytes").unwrap();
        std::fs::write(out.join("o"), "output").unwrap();
        let inputs = Inputs::with_previous(&repo, Records::default(), 0);
        inputs.read(&repo.join("d/f")).unwrap();
        inputs.read(&repo.join("d/e/g")).unwrap();
        inputs.read_dir(&repo.join("d")).unwrap();
        inputs.read(&repo.join(".gitignore")).unwrap_err();
        // Nothing at a path whose directory was listed without it: the listing says so.
        inputs.read(&repo.join("d/.gitignore")).unwrap_err();
        inputs.canonicalize(&repo.join("d")).unwrap();
        inputs.is_dir(&repo);
        // A stat of what was listed with that stat tells no more: not recorded.
        inputs.is_dir(&repo.join("d"));
        let package = Package {
            settings: "copy".into(),
            source_digest: "digest".into(),
        };
        let stat = |path: &Path| Stat::from_metadata(&std::fs::symlink_metadata(path).unwrap());
        let output = |path: &str, sha256: &str, package| Output {
            path: path.into(),
            stat: stat(&out.join(path)),
            sha256: sha256.into(),
            package,
        };
        let outputs = vec![
            output("o", "sha", Some(package)),
            output("t", "", None),
            output("t/u/v", "sha", None),
        ];
        let summary = Summary {
            resources: 1,
            packages: 1,
            rebuilt: 1,
            skipped: 0,
            bytes: 6,
            source_bytes: 5,
            out_dir: out.clone(),
        };
        let warning = Diagnostic::warning("code", "message").help("help");
        let identity = Identity::current(&repo, &out, Some(1));
        // Started long after every record: none is racy.
        let (records, started_ns) = (inputs.finish(), i64::MAX / 2);
        let state = State::new(
            identity.clone(),
            started_ns,
            records,
            outputs,
            summary,
            &[warning],
        );
        assert_eq!(state.inputs.iter().len(), 6);
        let bytes = state.to_bytes();
        let read = State::from_bytes(&bytes).unwrap();
        assert_eq!(
            State {
                read_checksum: None,
                ..read
            },
            state
        );
        std::fs::write(out.join(STATE_FILE), &bytes).unwrap();
        let (summary, warnings) = fresh(&out, &identity, 2).unwrap();
        assert_eq!((summary.rebuilt, summary.skipped), (0, 1));
        assert_eq!(warnings, state.warnings);
        // An output below two directories changed; recorded again, then an input changed.
        std::fs::write(out.join("t/u/v"), "changed output").unwrap();
        assert!(fresh(&out, &identity, 2).is_none());
        let mut state = state;
        state.outputs[2].stat = stat(&out.join("t/u/v"));
        std::fs::write(out.join(STATE_FILE), state.to_bytes()).unwrap();
        assert!(fresh(&out, &identity, 2).is_some());
        std::fs::write(repo.join("d/e/g"), "other bytes").unwrap();
        assert!(fresh(&out, &identity, 2).is_none());
    }
}
