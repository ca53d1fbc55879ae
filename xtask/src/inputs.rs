//! The input recorder: every file and directory that `check`, `plan`, `extension`, the scan and
//! the build read, list or stat goes through `Inputs`, which records the path with what was
//! seen (its stat, and the content hash or the listing derived from it), as rustc's dep-info
//! feeds Cargo's fingerprints. No list of inputs is kept by hand: a stage that reads a new file
//! through `Inputs` makes it an input of the next build's checks.
//!
//! The records of the previous build (`state`) answer again while the path's stat is the
//! recorded one and not racy: a file's content hash and a directory's listing are then reused
//! instead of read. What is trusted, and why, is written out once, in docs/incremental.md.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

/// What tells later whether a path may have changed (from `lstat`, or `stat` through links).
/// Times are nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
    pub mode: u32,
}

impl Stat {
    pub fn from_metadata(metadata: &Metadata) -> Stat {
        Stat {
            size: metadata.size(),
            mtime_ns: nanoseconds(metadata.mtime(), metadata.mtime_nsec()),
            ctime_ns: nanoseconds(metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
            dev: metadata.dev(),
            mode: metadata.mode(),
        }
    }

    /// Whether what this stat describes may have changed after a build that started at
    /// `started_ns` looked at it, within the same tick of the file clock (git's racy rule).
    pub fn racy(&self, started_ns: i64) -> bool {
        self.mtime_ns
            .max(self.ctime_ns)
            .saturating_add(CLOCK_SLACK_NS)
            >= started_ns
    }
}

/// A file clock ticks at least every jiffy (up to 10 ms with HZ=100): twice that of slack.
const CLOCK_SLACK_NS: i64 = 20_000_000;

/// A file time in nanoseconds since the epoch (saturating).
pub fn nanoseconds(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

/// Nanoseconds since the epoch: when a build starts.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// One entry of a directory listing, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub name: Vec<u8>,
    pub kind: ListedKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListedKind {
    File,
    Dir,
    /// With its target once read.
    Symlink(Option<Vec<u8>>),
    Other,
}

/// What a build saw at a path. Each is checked again by asking the same question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    /// `lstat`: what is there (`None`: nothing).
    Lstat(Option<Stat>),
    /// `stat` through symbolic links (`None`: nothing, or a dangling link).
    Stat(Option<Stat>),
    /// A file read whole: its `stat` (through links) before the read, and its content hash.
    Read { stat: Stat, sha256: [u8; 32] },
    /// A directory listed: its `lstat` before the listing, and the listing.
    Listed { stat: Stat, entries: Arc<[Listed]> },
    /// `canonicalize`: the real path (`None`: it failed).
    Resolved(Option<String>),
}

impl Seen {
    /// What the path holds now, as this record would see it: `None` when it changed.
    pub fn holds(&self, path: &Path) -> bool {
        match self {
            Seen::Lstat(stat) => lstat(path) == *stat,
            Seen::Stat(stat) => {
                std::fs::metadata(path)
                    .ok()
                    .map(|m| Stat::from_metadata(&m))
                    == *stat
            }
            Seen::Read { stat, .. } => {
                std::fs::metadata(path)
                    .ok()
                    .map(|m| Stat::from_metadata(&m))
                    == Some(*stat)
            }
            Seen::Listed { stat, .. } => lstat(path) == Some(*stat),
            Seen::Resolved(real) => {
                path.canonicalize()
                    .ok()
                    .and_then(|p| p.to_str().map(String::from))
                    == *real
            }
        }
    }

    /// The stat this record trusts, if any: racy ones are not trusted.
    pub fn stat(&self) -> Option<&Stat> {
        match self {
            Seen::Lstat(stat) | Seen::Stat(stat) => stat.as_ref(),
            Seen::Read { stat, .. } | Seen::Listed { stat, .. } => Some(stat),
            Seen::Resolved(_) => None,
        }
    }

    /// Records of one path sort in this order; one of each kind is kept.
    fn rank(&self) -> u8 {
        match self {
            Seen::Read { .. } => 0,
            Seen::Listed { .. } => 1,
            Seen::Lstat(_) => 2,
            Seen::Stat(_) => 3,
            Seen::Resolved(_) => 4,
        }
    }
}

fn lstat(path: &Path) -> Option<Stat> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| Stat::from_metadata(&m))
}

/// One recorded input: an absolute path (as text) and what was seen there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub path: String,
    pub seen: Seen,
}

/// Records every input of a build; answers from the previous build's records where they hold.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The previous build's records, sorted by path, and when that build started.
    previous: Vec<Input>,
    previous_started_ns: i64,
    records: Mutex<Vec<Input>>,
    /// Cleared when a path could not be recorded (it is not UTF-8): the next build then
    /// cannot tell that nothing changed.
    complete: AtomicBool,
}

impl Inputs {
    /// A recorder with nothing to reuse.
    pub fn new() -> Inputs {
        Inputs::with_previous(Vec::new(), 0)
    }

    /// A recorder that reuses `previous` (sorted by path, as `finish` leaves them) of a build
    /// that started at `started_ns`.
    pub fn with_previous(previous: Vec<Input>, started_ns: i64) -> Inputs {
        Inputs {
            previous,
            previous_started_ns: started_ns,
            records: Mutex::new(Vec::new()),
            complete: AtomicBool::new(true),
        }
    }

    fn record(&self, path: &Path, seen: Seen) {
        match path.to_str() {
            Some(path) => self
                .records
                .lock()
                .expect("no thread panics holding it")
                .push(Input {
                    path: path.to_string(),
                    seen,
                }),
            None => self.complete.store(false, Ordering::Relaxed),
        }
    }

    /// The previous build's record of `path` of the kind `matches` accepts, if its stat is the
    /// one given and was not racy.
    fn previous(&self, path: &Path, stat: &Stat, matches: impl Fn(&Seen) -> bool) -> Option<&Seen> {
        let path = path.to_str()?;
        let start = self
            .previous
            .partition_point(|input| input.path.as_str() < path);
        self.previous[start..]
            .iter()
            .take_while(|input| input.path == path)
            .map(|input| &input.seen)
            .find(|seen| matches(seen))
            .filter(|seen| seen.stat() == Some(stat) && !stat.racy(self.previous_started_ns))
    }

    /// `std::fs::symlink_metadata`, recorded.
    pub fn lstat(&self, path: &Path) -> std::io::Result<Metadata> {
        let result = std::fs::symlink_metadata(path);
        let stat = result.as_ref().ok().map(Stat::from_metadata);
        self.record(path, Seen::Lstat(stat));
        result
    }

    /// `std::fs::metadata` (through symbolic links), recorded.
    pub fn stat(&self, path: &Path) -> std::io::Result<Metadata> {
        let result = std::fs::metadata(path);
        let stat = result.as_ref().ok().map(Stat::from_metadata);
        self.record(path, Seen::Stat(stat));
        result
    }

    pub fn is_file(&self, path: &Path) -> bool {
        self.stat(path).is_ok_and(|m| m.is_file())
    }

    pub fn is_dir(&self, path: &Path) -> bool {
        self.stat(path).is_ok_and(|m| m.is_dir())
    }

    /// `Path::canonicalize`, recorded.
    pub fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
        let result = path.canonicalize();
        let real = result
            .as_ref()
            .ok()
            .and_then(|p| p.to_str().map(String::from));
        if result.is_ok() && real.is_none() {
            self.complete.store(false, Ordering::Relaxed);
        }
        self.record(path, Seen::Resolved(real));
        result
    }

    /// Reads a whole file, recorded with its stat taken before the read (a change after it
    /// shows in the next stat). A missing file is recorded as missing.
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let stat = match std::fs::metadata(path) {
            Ok(metadata) => Stat::from_metadata(&metadata),
            Err(error) => {
                self.record(path, Seen::Stat(None));
                return Err(error);
            }
        };
        let bytes = std::fs::read(path)?;
        let sha256 = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
        self.record(path, Seen::Read { stat, sha256 });
        Ok(bytes)
    }

    pub fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        String::from_utf8(self.read(path)?).map_err(|_| {
            // The standard library's words for it (`std::fs::read_to_string`).
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    }

    /// The content hash of the file at `path`, stat'ed as `stat`: the previous build's when
    /// that stat is the recorded one, else `compute`'s. Recorded either way.
    pub fn hash_file(
        &self,
        path: &Path,
        stat: &Stat,
        compute: impl FnOnce() -> Result<[u8; 32]>,
    ) -> Result<[u8; 32]> {
        let known = self.previous(path, stat, |seen| matches!(seen, Seen::Read { .. }));
        let sha256 = match known {
            Some(Seen::Read { sha256, .. }) => *sha256,
            _ => compute()?,
        };
        self.saw_file(path, stat, &sha256);
        Ok(sha256)
    }

    /// Records a file read whole (by `archive`, which hashes while it compresses).
    pub fn saw_file(&self, path: &Path, stat: &Stat, sha256: &[u8; 32]) {
        self.record(
            path,
            Seen::Read {
                stat: *stat,
                sha256: *sha256,
            },
        );
    }

    /// The entries of the directory `dir` (its `lstat` is `stat`, taken before), sorted by
    /// name: the previous build's listing when `reuse` and that stat is the recorded one, else
    /// read. Recorded either way.
    pub fn list(&self, dir: &Path, stat: &Stat, reuse: bool) -> Result<Arc<[Listed]>> {
        let known = reuse
            .then(|| self.previous(dir, stat, |seen| matches!(seen, Seen::Listed { .. })))
            .flatten();
        let entries = match known {
            Some(Seen::Listed { entries, .. }) => Arc::clone(entries),
            _ => list(dir)?,
        };
        self.listed(dir, stat, Arc::clone(&entries));
        Ok(entries)
    }

    /// Records a listing (a copy of one with symbolic-link targets filled in).
    pub fn listed(&self, dir: &Path, stat: &Stat, entries: Arc<[Listed]>) {
        self.record(
            dir,
            Seen::Listed {
                stat: *stat,
                entries,
            },
        );
    }

    /// The entries of a directory, sorted by name, with their paths: `std::fs::read_dir`,
    /// recorded (the listing with the directory's `lstat`).
    pub fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<(PathBuf, ListedKind)>> {
        let stat = Stat::from_metadata(&self.lstat(dir)?);
        let entries = match self.previous(dir, &stat, |seen| matches!(seen, Seen::Listed { .. })) {
            Some(Seen::Listed { entries, .. }) => Arc::clone(entries),
            _ => read_listing(dir)?,
        };
        self.listed(dir, &stat, Arc::clone(&entries));
        Ok(entries
            .iter()
            .map(|entry| (dir.join(OsStr::from_bytes(&entry.name)), entry.kind.clone()))
            .collect())
    }

    /// Every record, sorted by path, one of each kind per path (the first seen), and whether
    /// every input could be recorded.
    pub fn finish(self) -> (Vec<Input>, bool) {
        let mut records = self
            .records
            .into_inner()
            .expect("no thread panics holding it");
        records.sort_by(|a, b| a.path.cmp(&b.path).then(a.seen.rank().cmp(&b.seen.rank())));
        records.dedup_by(|later, first| {
            later.path == first.path && later.seen.rank() == first.seen.rank()
        });
        // An `lstat` of a regular file that was also read tells nothing more.
        let mut kept: Vec<Input> = Vec::with_capacity(records.len());
        for input in records {
            if let (Seen::Lstat(Some(stat)), Some(last)) = (&input.seen, kept.last())
                && last.path == input.path
                && matches!(&last.seen, Seen::Read { stat: read, .. } | Seen::Listed { stat: read, .. } if read == stat)
            {
                continue;
            }
            kept.push(input);
        }
        kept.shrink_to_fit();
        (kept, self.complete.into_inner())
    }
}

/// The entries of one directory, sorted by name, with the types its listing gives.
fn list(dir: &Path) -> Result<Arc<[Listed]>> {
    read_listing(dir).with_path("read", dir)
}

fn read_listing(dir: &Path) -> std::io::Result<Arc<[Listed]>> {
    let mut listing = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let kind = if file_type.is_dir() {
            ListedKind::Dir
        } else if file_type.is_symlink() {
            ListedKind::Symlink(None)
        } else if file_type.is_file() {
            ListedKind::File
        } else {
            ListedKind::Other
        };
        listing.push(Listed {
            name: entry.file_name().into_vec(),
            kind,
        });
    }
    listing.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage that reads a new file through the recorder makes it an input: the records say
    /// so, and they stop holding once the file changes. Nothing lists the inputs by hand.
    #[test]
    fn a_new_read_is_an_input_without_touching_the_recorder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-input.txt");
        std::fs::write(&path, "one").unwrap();
        let inputs = Inputs::new();
        // The "stage": any read through the recorder.
        assert_eq!(inputs.read_to_string(&path).unwrap(), "one");
        let (records, complete) = inputs.finish();
        assert!(complete);
        let record = records
            .iter()
            .find(|input| Path::new(&input.path) == path)
            .expect("the read is recorded");
        assert!(record.seen.holds(&path));
        std::fs::write(&path, "two, longer").unwrap();
        assert!(!record.seen.holds(&path), "a change is seen");
    }

    #[test]
    fn a_missing_file_is_recorded_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".gitignore");
        let inputs = Inputs::new();
        assert!(inputs.read(&path).is_err());
        let (records, _) = inputs.finish();
        assert!(records[0].seen.holds(&path));
        std::fs::write(&path, "*.tmp\n").unwrap();
        assert!(
            !records[0].seen.holds(&path),
            "a file created there is seen"
        );
    }

    #[test]
    fn a_hash_is_reused_only_for_the_same_old_stat() {
        let stat = Stat {
            size: 3,
            mtime_ns: 1_000,
            ctime_ns: 1_000,
            ..Stat::default()
        };
        let previous = vec![Input {
            path: "/a".into(),
            seen: Seen::Read {
                stat,
                sha256: [7; 32],
            },
        }];
        let inputs = Inputs::with_previous(previous.clone(), 10 * CLOCK_SLACK_NS);
        let hash = |stat: &Stat| {
            inputs
                .hash_file(Path::new("/a"), stat, || Ok([1; 32]))
                .unwrap()
        };
        assert_eq!(hash(&stat), [7; 32]);
        assert_eq!(hash(&Stat { size: 4, ..stat }), [1; 32]);
        // Racy: the previous build started within the clock's slack of the file's change.
        let racy = Inputs::with_previous(previous, 1_000 + CLOCK_SLACK_NS / 2);
        assert_eq!(
            racy.hash_file(Path::new("/a"), &stat, || Ok([1; 32]))
                .unwrap(),
            [1; 32]
        );
    }
}
