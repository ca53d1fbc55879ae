//! The input recorder: every file and directory that `check`, `plan`, `extension`, the scan and
//! the build read, list or stat goes through `Inputs`, which records the path with what was
//! seen (its stat, and the content hash or the listing derived from it), as rustc's dep-info
//! feeds Cargo's fingerprints. No list of inputs is kept by hand: a stage that reads a new file
//! through `Inputs` makes it an input of the next build's checks.
//!
//! The records of the previous build (`state`) answer again while the path's stat is the
//! recorded one and not racy: a file's content hash and a directory's listing are then reused
//! instead of read. What is trusted, and why, is written out once, in docs/incremental.md.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::error::{IoContext, Result};
use crate::stat::{Base, S_IFDIR, S_IFMT, Stat};

/// A file clock ticks at least every jiffy (up to 10 ms with HZ=100): twice that of slack.
const CLOCK_SLACK_NS: i64 = 20_000_000;

impl Stat {
    /// Whether what this stat describes may have changed after a build that started at
    /// `started_ns` looked at it, within the same tick of the file clock (git's racy rule).
    pub fn racy(&self, started_ns: i64) -> bool {
        self.mtime_ns
            .max(self.ctime_ns)
            .saturating_add(CLOCK_SLACK_NS)
            >= started_ns
    }
}

/// Nanoseconds since the epoch: when a build starts.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What a directory listing says an entry is, as its byte in a `Listing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ListedKind {
    File = b'f',
    Dir = b'd',
    Symlink = b'l',
    Other = b'o',
}

/// The kind's byte in a `Listing` of a link whose target follows its name.
const LINK_WITH_TARGET: u8 = b'L';

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed<'a> {
    pub name: &'a [u8],
    pub kind: ListedKind,
    /// A symbolic link's target, once read.
    pub target: Option<&'a [u8]>,
}

/// A directory listing, sorted by name, in one buffer (a large repository has tens of
/// thousands of directories: memory). Each entry is its kind's byte and its name, then, for a
/// link whose target was read, the target, each ended by a NUL byte, which no name or target
/// holds. Serialized as bytes: decoded with one copy, not byte by byte.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing(Arc<[u8]>);

impl Serialize for Listing {
    fn serialize<S: Serializer>(&self, to: S) -> std::result::Result<S::Ok, S::Error> {
        to.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Listing {
    fn deserialize<D: Deserializer<'de>>(from: D) -> std::result::Result<Listing, D::Error> {
        struct Bytes;
        impl de::Visitor<'_> for Bytes {
            type Value = Listing;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a directory listing's bytes")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> std::result::Result<Listing, E> {
                Ok(Listing(bytes.into()))
            }
        }
        from.deserialize_bytes(Bytes)
    }
}

impl Listing {
    /// The listing of `entries`, sorted by name.
    pub fn new<'a>(entries: impl IntoIterator<Item = Listed<'a>>) -> Listing {
        let mut bytes = Vec::new();
        for entry in entries {
            match entry.target {
                Some(target) => {
                    bytes.push(LINK_WITH_TARGET);
                    bytes.extend_from_slice(entry.name);
                    bytes.push(0);
                    bytes.extend_from_slice(target);
                }
                None => {
                    bytes.push(entry.kind as u8);
                    bytes.extend_from_slice(entry.name);
                }
            }
            bytes.push(0);
        }
        Listing(bytes.into())
    }

    /// Its entries, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = Listed<'_>> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (&kind, after) = rest.split_first()?;
            let (name, after) = split_at_nul(after);
            let (kind, target, after) = match kind {
                b'f' => (ListedKind::File, None, after),
                b'd' => (ListedKind::Dir, None, after),
                b'l' => (ListedKind::Symlink, None, after),
                LINK_WITH_TARGET => {
                    let (target, after) = split_at_nul(after);
                    (ListedKind::Symlink, Some(target), after)
                }
                _ => (ListedKind::Other, None, after),
            };
            rest = after;
            Some(Listed { name, kind, target })
        })
    }
}

/// The field at the start of `bytes`, and what follows the NUL that ends it.
fn split_at_nul(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
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
    Listed { stat: Stat, entries: Listing },
    /// `canonicalize`: the real path (`None`: it failed).
    Resolved(Option<String>),
}

impl Seen {
    /// Whether `key` below `base` holds now what this record saw there.
    pub fn holds(&self, base: &Base, key: &[u8]) -> bool {
        match self {
            Seen::Lstat(stat) => base.stat(key, false) == *stat,
            Seen::Stat(stat) => base.stat(key, true) == *stat,
            Seen::Read { stat, .. } => base.stat(key, true) == Some(*stat),
            Seen::Listed { stat, .. } => base.stat(key, false) == Some(*stat),
            Seen::Resolved(real) => {
                let now = base.path().join(OsStr::from_bytes(key)).canonicalize();
                now.ok().and_then(|p| p.to_str().map(String::from)) == *real
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

/// Every input a build recorded, sorted by path, one of each kind per path. The paths are
/// relative to `root` (absolute outside it) and held in one buffer: a large repository has tens
/// of thousands of them (memory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    pub root: PathBuf,
    paths: String,
    inputs: Vec<Input>,
}

/// One record: where its path is in `Records::paths`, and what was seen there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    start: u32,
    len: u32,
    pub seen: Seen,
}

impl Records {
    /// The path of `input` as recorded: relative to `root`, or absolute.
    pub fn key(&self, input: &Input) -> &str {
        &self.paths[input.start as usize..(input.start + input.len) as usize]
    }

    /// No records yet, with room for `inputs` of them whose paths take `paths` bytes.
    pub fn with_capacity(root: &Path, inputs: usize, paths: usize) -> Records {
        Records {
            root: root.to_path_buf(),
            paths: String::with_capacity(paths),
            inputs: Vec::with_capacity(inputs),
        }
    }

    /// Lets `edit` change what each record saw (given its path).
    pub fn edit(&mut self, mut edit: impl FnMut(&Path, &mut Seen)) {
        for input in &mut self.inputs {
            let key = &self.paths[input.start as usize..(input.start + input.len) as usize];
            edit(&self.root.join(key), &mut input.seen);
        }
    }

    /// Every record, sorted by path (`key` says where each is).
    pub fn iter(&self) -> std::slice::Iter<'_, Input> {
        self.inputs.iter()
    }

    /// The key `path` is recorded under, if it can be recorded: relative to `root` inside it,
    /// else absolute (a relative path outside it, or one that is not UTF-8, cannot be).
    fn key_of<'p>(&self, path: &'p Path) -> Option<&'p str> {
        // Byte-wise when no component needs normalizing, as `Path::strip_prefix` (which
        // compares component by component) would give; that for the rest.
        let (bytes, root) = (
            path.as_os_str().as_bytes(),
            self.root.as_os_str().as_bytes(),
        );
        let inside = bytes
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix(b"/"));
        if let Some(key) =
            inside.filter(|key| key.split(|&b| b == b'/').all(|c| c != b"" && c != b"."))
        {
            return std::str::from_utf8(key).ok();
        }
        match path.strip_prefix(&self.root) {
            Ok(inside) => inside.to_str(),
            Err(_) if path.is_absolute() => path.to_str(),
            Err(_) => None,
        }
    }

    pub fn push(&mut self, key: &str, seen: Seen) {
        let start = u32::try_from(self.paths.len()).expect("under 4 GiB of paths");
        self.paths.push_str(key);
        self.inputs.push(Input {
            start,
            len: key.len() as u32,
            seen,
        });
    }

    /// The records of `key`. A thread asks mostly in key order (a tree's directories as they
    /// are walked, its files as they are hashed), so the search starts where the thread's
    /// previous one ended and gallops forward, a few comparisons instead of a whole binary
    /// search over every record; anywhere else, the binary search.
    fn of(&self, key: &str) -> impl Iterator<Item = &Seen> {
        thread_local! {
            static LAST: Cell<usize> = const { Cell::new(0) };
        }
        let inputs = &self.inputs;
        let before = |input: &Input| self.key(input) < key;
        let last = LAST.get().min(inputs.len());
        let start = if last > 0 && !before(&inputs[last - 1]) {
            inputs[..last].partition_point(before)
        } else {
            // Every record below `low` comes before `key`; the one at `low + step - 1` is checked.
            let (mut low, mut step) = (last, 1);
            while inputs.get(low + step - 1).is_some_and(before) {
                (low, step) = (low + step, step * 2);
            }
            let high = (low + step - 1).min(inputs.len());
            low + inputs[low..high].partition_point(before)
        };
        LAST.set(start);
        self.inputs[start..]
            .iter()
            .take_while(move |input| self.key(input) == key)
            .map(|input| &input.seen)
    }
}

/// Records every input of a build; answers from the previous build's records where they hold.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The previous build's records, and when that build started.
    previous: Records,
    previous_started_ns: i64,
    records: Mutex<Records>,
    /// Cleared when a path could not be recorded (it is not UTF-8): the next build then
    /// cannot tell that nothing changed.
    complete: AtomicBool,
}

impl Inputs {
    /// A recorder with nothing to reuse, recording absolute paths.
    pub fn new() -> Inputs {
        Inputs::with_previous(Path::new("/"), Records::default(), 0)
    }

    /// A recorder of the paths below `root` (absolute), which reuses `previous` (as `finish`
    /// left them, for the same root) of a build that started at `started_ns`.
    pub fn with_previous(root: &Path, previous: Records, started_ns: i64) -> Inputs {
        let mut inputs = Inputs {
            records: Mutex::new(Records::with_capacity(root, 0, 0)),
            complete: AtomicBool::new(true),
            ..Inputs::default()
        };
        inputs.reuse(previous, started_ns);
        inputs
    }

    /// Reuses `previous` (as `finish` left them, for the same root) of a build that started at
    /// `started_ns` from now on.
    pub fn reuse(&mut self, previous: Records, started_ns: i64) {
        let records = self.records.get_mut().expect("no thread panics holding it");
        self.previous = Some(previous)
            .filter(|p| p.root == records.root)
            .unwrap_or_default();
        self.previous_started_ns = started_ns;
        // As many as last time, most likely, and an eighth for what `finish` leaves out
        // (repeated questions): room for them at once, never twice that (memory).
        let inputs = self.previous.inputs.len() / 8 * 9;
        let paths = self.previous.paths.len() / 8 * 9;
        (records.inputs).reserve_exact(inputs.saturating_sub(records.inputs.len()));
        (records.paths).reserve_exact(paths.saturating_sub(records.paths.len()));
    }

    fn record(&self, path: &Path, seen: Seen) {
        let mut records = self.records.lock().expect("no thread panics holding it");
        match records.key_of(path) {
            Some(key) => records.push(key, seen),
            None => self.complete.store(false, Ordering::Relaxed),
        }
    }

    /// The previous build's record of `path` of the kind `matches` accepts, if its stat is the
    /// one given and was not racy.
    fn previous(&self, path: &Path, stat: &Stat, matches: impl Fn(&Seen) -> bool) -> Option<&Seen> {
        self.previous
            .of(self.previous.key_of(path)?)
            .find(|seen| matches(seen))
            .filter(|seen| seen.stat() == Some(stat) && !stat.racy(self.previous_started_ns))
    }

    /// Records an `lstat` taken by the caller (when what it found is not recorded otherwise).
    pub fn saw_lstat(&self, path: &Path, stat: Option<Stat>) {
        self.record(path, Seen::Lstat(stat));
    }

    /// `std::fs::symlink_metadata`, recorded.
    pub fn lstat(&self, path: &Path) -> std::io::Result<Metadata> {
        let result = std::fs::symlink_metadata(path);
        self.saw_lstat(path, result.as_ref().ok().map(Stat::from_metadata));
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
    /// read. Not recorded: the caller records it (`listed`) with the link targets it read.
    pub fn list(&self, dir: &Path, stat: &Stat, reuse: bool) -> Result<Listing> {
        let known = reuse
            .then(|| self.previous(dir, stat, |seen| matches!(seen, Seen::Listed { .. })))
            .flatten();
        match known {
            Some(Seen::Listed { entries, .. }) => Ok(entries.clone()),
            _ => read_listing(dir).with_path("read", dir),
        }
    }

    /// Records a listing (a copy of one with symbolic-link targets filled in).
    pub fn listed(&self, dir: &Path, stat: &Stat, entries: Listing) {
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
            Some(Seen::Listed { entries, .. }) => entries.clone(),
            _ => read_listing(dir)?,
        };
        let paths = entries
            .iter()
            .map(|entry| (dir.join(OsStr::from_bytes(entry.name)), entry.kind))
            .collect();
        self.listed(dir, &stat, entries);
        Ok(paths)
    }

    /// Every record, sorted by path, one of each kind per path (the first seen), and whether
    /// every input could be recorded.
    pub fn finish(self) -> (Records, bool) {
        drop(self.previous);
        let Records {
            root,
            paths,
            mut inputs,
        } = self
            .records
            .into_inner()
            .expect("no thread panics holding it");
        let key = |input: &Input| &paths[input.start as usize..][..input.len as usize];
        inputs.sort_by(|a, b| key(a).cmp(key(b)).then(a.seen.rank().cmp(&b.seen.rank())));
        inputs.dedup_by(|later, first| {
            key(later) == key(first)
                && (later.seen.rank() == first.seen.rank()
                    // A stat or lstat of what was read or listed with that stat tells no more.
                    || matches!((&later.seen, &first.seen),
                        (Seen::Lstat(Some(stat)) | Seen::Stat(Some(stat)),
                            Seen::Read { stat: read, .. } | Seen::Listed { stat: read, .. })
                        if read == stat))
        });
        // Nothing at a path whose directory was listed without it: while the directory's stat
        // holds, so does its listing (an entry added changes it), which says so.
        let implied: Vec<bool> = (inputs.iter())
            .map(|input| {
                let (dir, name) = key(input).rsplit_once('/').unwrap_or(("", key(input)));
                let listed = || inputs.get(inputs.partition_point(|i| key(i) < dir));
                input.seen == Seen::Stat(None)
                    && listed().is_some_and(|d| {
                        key(d) == dir
                            && matches!(&d.seen,
                        Seen::Listed { stat, entries } if stat.mode & S_IFMT == S_IFDIR
                            && entries.iter().all(|e| e.name != name.as_bytes()))
                    })
            })
            .collect();
        let mut implied = implied.into_iter();
        inputs.retain(|_| !implied.next().expect("one for each record"));
        // The paths again, in the records' order: the same records give the same bytes.
        let mut sorted = String::with_capacity(inputs.iter().map(|i| i.len as usize).sum());
        for input in &mut inputs {
            let start = sorted.len() as u32;
            sorted.push_str(key(input));
            input.start = start;
        }
        let sorted = Records {
            root,
            paths: sorted,
            inputs,
        };
        (sorted, self.complete.into_inner())
    }
}

/// The entries of one directory, sorted by name, with the types its listing gives.
fn read_listing(dir: &Path) -> std::io::Result<Listing> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let kind = if file_type.is_dir() {
            ListedKind::Dir
        } else if file_type.is_symlink() {
            ListedKind::Symlink
        } else if file_type.is_file() {
            ListedKind::File
        } else {
            ListedKind::Other
        };
        entries.push((entry.file_name().into_vec(), kind));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Listing::new(entries.iter().map(|(name, kind)| Listed {
        name,
        kind: *kind,
        target: None,
    })))
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
        let base = Base::open(&records.root);
        let input = records
            .iter()
            .find(|input| records.root.join(records.key(input)) == path)
            .expect("the read is recorded");
        assert!(input.seen.holds(&base, records.key(input).as_bytes()));
        std::fs::write(&path, "two, longer").unwrap();
        assert!(
            !input.seen.holds(&base, records.key(input).as_bytes()),
            "a change is seen"
        );
    }

    #[test]
    fn a_missing_file_is_recorded_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".gitignore");
        let inputs = Inputs::new();
        assert!(inputs.read(&path).is_err());
        let (records, _) = inputs.finish();
        let input = records.iter().next().unwrap();
        let key = records.key(input);
        assert_eq!(records.root.join(key), path);
        let base = Base::open(&records.root);
        assert!(input.seen.holds(&base, key.as_bytes()));
        std::fs::write(&path, "*.tmp\n").unwrap();
        assert!(
            !input.seen.holds(&base, key.as_bytes()),
            "a file created there is seen"
        );
    }

    /// Lookups in any order (forward, backward, by jumps, of missing keys) find the records a
    /// look at every record finds, wherever the previous lookup left off.
    #[test]
    fn records_are_found_in_any_order_of_lookups() {
        let mut records = Records::default();
        for i in 0..300 {
            let key = format!("k{:04}", i * 2);
            records.push(&key, Seen::Lstat(None));
            records.push(&key, Seen::Stat(None));
        }
        let forward = 0..700;
        let orders = (forward.clone().chain(forward.clone().rev()))
            .chain(forward.map(|i| i * 37 % 700))
            .chain([699, 0, 1, 2, 598, 4, 600]);
        for i in orders {
            let key = format!("k{i:04}");
            let expected = (records.iter())
                .filter(|input| records.key(input) == key)
                .count();
            assert_eq!(records.of(&key).count(), expected, "{key}");
        }
    }

    #[test]
    fn a_hash_is_reused_only_for_the_same_old_stat() {
        let stat = Stat {
            size: 3,
            mtime_ns: 1_000,
            ctime_ns: 1_000,
            ..Stat::default()
        };
        let root = Path::new("/");
        let mut previous = Records {
            root: root.to_path_buf(),
            ..Records::default()
        };
        let sha256 = [7; 32];
        previous.push("a", Seen::Read { stat, sha256 });
        let inputs = Inputs::with_previous(root, previous.clone(), 10 * CLOCK_SLACK_NS);
        let hash = |stat: &Stat| {
            inputs
                .hash_file(Path::new("/a"), stat, || Ok([1; 32]))
                .unwrap()
        };
        assert_eq!(hash(&stat), [7; 32]);
        assert_eq!(hash(&Stat { size: 4, ..stat }), [1; 32]);
        // Racy: the previous build started within the clock's slack of the file's change.
        let racy = Inputs::with_previous(root, previous, 1_000 + CLOCK_SLACK_NS / 2);
        assert_eq!(
            racy.hash_file(Path::new("/a"), &stat, || Ok([1; 32]))
                .unwrap(),
            [1; 32]
        );
    }
}
